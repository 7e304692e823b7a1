// Placeholder replaced by the browser client module (issue 6).
export class SseClient {}
