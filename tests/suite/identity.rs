//! The identity seam in use: the axum example's sessions say who a request is
//! (`sse_examples::Sessions`), so names are no longer whatever a caller asks for.

use std::sync::Arc;

use http::{Method, StatusCode};

use super::suite::client::{Events, Version, call};
use super::suite::{Server, config, run};

/// The axum example with sign-in, on its own server.
fn start() -> (Server, Arc<sse_examples::Sessions>) {
    let sessions = Arc::new(sse_examples::Sessions::default());
    let mut config = config();
    config.access = Some(sessions.clone());
    let for_app = sessions.clone();
    let server = super::suite::tokio_server(config, move |listener, sse, stop| async move {
        tokio::spawn(sse.clone().sweeper());
        let app = sse_examples::axum_router_with_sessions(sse.clone(), for_app);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await.ok();
            sse.shutdown().await;
        })
        .await
        .expect("serve");
    });
    (server, sessions)
}

#[test]
fn names_are_the_signed_in_users() {
    let (server, _sessions) = start();
    run(async {
        let addr = server.addr;
        // Without a session, no client.
        let anon = call(addr, Method::POST, "/sse/clients?name=alice", &[], "").await;
        assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{}", anon.body);
        let login = call(addr, Method::POST, "/login?user=alice", &[], "").await;
        assert_eq!(login.status, StatusCode::OK);
        let cookie = login.headers["set-cookie"].to_str().unwrap().to_owned();
        let alice = format!("session={}", login.body);
        assert!(cookie.starts_with(&alice), "{cookie}");
        let as_alice = [("cookie", alice.as_str())];
        let bob_token = call(addr, Method::POST, "/login?user=bob", &[], "")
            .await
            .body;
        let bob = format!("Bearer {bob_token}");
        let as_bob = [("authorization", bob.as_str())];

        // Alice's client is hers, whatever she asks for.
        let mine = call(addr, Method::POST, "/sse/clients", &as_alice, "").await;
        assert_eq!(mine.status, StatusCode::CREATED);
        let id: sse_registry::ClientId = mine.body.parse().unwrap();
        assert_eq!(server.sse.hub().name(id).unwrap().as_deref(), Some("alice"));
        let same = call(addr, Method::POST, "/sse/clients?name=alice", &as_alice, "").await;
        assert_eq!(same.status, StatusCode::CREATED);
        let other = call(addr, Method::POST, "/sse/clients?name=carol", &as_alice, "").await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
        // A stranger's `?name=alice` is refused: joining her name would get her task events.
        let stranger = call(addr, Method::POST, "/sse/clients?name=alice", &as_bob, "").await;
        assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.body);

        // Bob, even holding alice's id, cannot act for her client.
        for (method, path) in [
            (Method::GET, format!("/sse/events/{id}")),
            (Method::PUT, format!("/sse/listen/{id}/news")),
            (Method::PUT, format!("/sse/tasks/{id}/t1")),
            (Method::DELETE, format!("/sse/clients/{id}")),
        ] {
            let reply = call(addr, method.clone(), &path, &as_bob, "").await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
        assert!(server.sse.hub().contains(id));

        // Keys: `private.alice` is hers alone; others are open.
        let listen = |key: &str| format!("/sse/listen/{id}/{key}");
        let own = call(addr, Method::PUT, &listen("private.alice"), &as_alice, "").await;
        assert_eq!(own.status, StatusCode::NO_CONTENT);
        let news = call(addr, Method::PUT, &listen("news"), &as_alice, "").await;
        assert_eq!(news.status, StatusCode::NO_CONTENT);
        let forbidden = call(addr, Method::PUT, &listen("private.bob"), &as_alice, "").await;
        assert_eq!(
            forbidden.status,
            StatusCode::FORBIDDEN,
            "{}",
            forbidden.body
        );

        // Her stream opens with her session, and her events arrive on it.
        let mut events = Events::open_with(addr, Version::H1, &id.to_string(), &as_alice).await;
        assert_eq!(events.status, StatusCode::OK);
        assert_eq!(events.expect("registered").await, id.to_string());
        let notify = call(
            addr,
            Method::POST,
            "/sse/notify/private.alice",
            &[("authorization", "Bearer s3cret-admin-token")],
            "for alice",
        )
        .await;
        assert_eq!(notify.status, StatusCode::ACCEPTED);
        assert_eq!(events.expect("private.alice").await, "for alice");
    });
}
