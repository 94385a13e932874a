use super::*;
use crate::hub::{ApiToken, HubClient, HubConfig, Unobserved};
use crate::pipeline::executor::{DeleteUser, GetVersion};
use crate::pipeline::guard::Restarted;
use std::net::TcpListener;

/// Counts nothing: restarts are not these tests' business.
struct Nobody;

impl Actor for Nobody {
    type Context = Context<Self>;
}

impl Handler<Restarted> for Nobody {
    type Result = ();
    fn handle(&mut self, _: Restarted, _ctx: &mut Context<Self>) {}
}

/// A pool of `size` executors whose requests go to `port`, where nothing
/// ever answers: each attempt ends at the client's timeout, `timeout`.
fn pool(size: usize, port: u16, timeout: Duration) -> (Addr<ExecutorPool>, Arc<Metrics>) {
    let config = HubConfig {
        base_url: format!("http://127.0.0.1:{port}/hub/api"),
        token: ApiToken::new("token".into()),
        request_timeout: timeout,
        tls: None,
        proxy: None,
    };
    let client = HubClient::new(&config, Arc::new(Unobserved));
    let nobody = Nobody.start().recipient();
    let executors = (1..=size)
        .map(|n| Executor::new(n, client.clone(), nobody.clone(), Log::discard()).start())
        .collect();
    let metrics = Metrics::new();
    let pool = ExecutorPool::new(
        executors,
        RetryPolicy::default(),
        Arc::clone(&metrics),
        Log::discard(),
    )
    .start();
    (pool, metrics)
}

/// Accepts connections (the kernel does) and never answers.
fn silent() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

fn delete(user: &str) -> Dispatch<DeleteUser> {
    Dispatch {
        attempt: Attempt {
            call: DeleteUser { user: user.into() },
            announce: None,
        },
        lane: Lane::Act,
        despite_outage: false,
    }
}

fn version() -> Dispatch<GetVersion> {
    Dispatch {
        attempt: Attempt {
            call: GetVersion,
            announce: None,
        },
        lane: Lane::Read,
        despite_outage: false,
    }
}

/// Waits (yielding) until the pool's requests on the wire are `expected`.
async fn on_the_wire(pool: &Addr<ExecutorPool>, expected: &[&str]) {
    for _ in 0..2000 {
        if pool.send(InFlight).await.unwrap() == expected {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "on the wire: {:?}, expected {expected:?}",
        pool.send(InFlight).await.unwrap()
    );
}

#[actix_rt::test]
async fn no_more_requests_are_on_the_wire_than_executors_and_the_rest_wait() {
    let (_silent, port) = silent();
    let (pool, _) = pool(2, port, Duration::from_secs(60));
    for user in ["a", "b", "c", "d", "e"] {
        let pool = pool.clone();
        actix_rt::spawn(async move { pool.send(delete(user)).await });
    }
    on_the_wire(&pool, &["DELETE /users/a", "DELETE /users/b"]).await;
    assert_eq!(
        pool.send(Load).await.unwrap(),
        Loaded {
            backlog: 3,
            size: 2
        }
    );
}

#[actix_rt::test]
async fn a_read_goes_ahead_of_commands_that_waited_longer() {
    let (_silent, port) = silent();
    // One executor; each attempt ends at the 300 ms timeout.
    let (pool, _) = pool(1, port, Duration::from_millis(300));
    let first = pool.send(delete("a"));
    let second = pool.send(delete("b"));
    let read = pool.send(version());
    let third = pool.send(delete("c"));
    let answers = futures_util::future::join4(first, second, read, third);
    let order = async {
        on_the_wire(&pool, &["DELETE /users/a"]).await;
        on_the_wire(&pool, &["GET /"]).await;
        on_the_wire(&pool, &["DELETE /users/b"]).await;
        on_the_wire(&pool, &["DELETE /users/c"]).await;
    };
    let ((a, b, r, c), ()) = futures_util::future::join(answers, order).await;
    for answer in [
        a.unwrap().map(|_| ()),
        b.unwrap().map(|_| ()),
        c.unwrap().map(|_| ()),
    ] {
        assert!(matches!(
            answer,
            Err(AttemptError::Hub(HubError::Timeout { .. }))
        ));
    }
    assert!(matches!(
        r.unwrap(),
        Err(AttemptError::Hub(HubError::Timeout { .. }))
    ));
}

#[actix_rt::test]
async fn stopping_answers_what_waits_and_sends_nothing_new() {
    let (_silent, port) = silent();
    let (pool, _) = pool(1, port, Duration::from_secs(60));
    let on_wire = {
        let pool = pool.clone();
        actix_rt::spawn(async move { pool.send(delete("a")).await })
    };
    on_the_wire(&pool, &["DELETE /users/a"]).await;
    let waiting = pool.send(delete("b"));
    let waiting = actix_rt::spawn(waiting);
    // Let the second reach the line.
    for _ in 0..100 {
        if pool.send(Load).await.unwrap().backlog == 1 {
            break;
        }
        actix_rt::task::yield_now().await;
    }
    pool.send(Stopping).await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), Err(AttemptError::Stopping));
    assert_eq!(
        pool.send(delete("c")).await.unwrap(),
        Err(AttemptError::Stopping)
    );
    // What was on the wire is still there, named.
    assert_eq!(pool.send(InFlight).await.unwrap(), ["DELETE /users/a"]);
    assert!(!on_wire.is_finished());
    // A backoff is cut short by the stop, at once.
    pool.send(UntilStopping).await.unwrap();
}

#[actix_rt::test]
async fn a_give_up_on_an_unreachable_hub_holds_the_rest_of_the_pass_until_the_next() {
    // Nothing listens on the port: connections are refused.
    let port = {
        let (listener, port) = silent();
        drop(listener);
        port
    };
    let (pool, metrics) = pool(1, port, Duration::from_secs(5));
    let refused = HubError::Unreachable {
        request: "GET /".into(),
        detail: "Connection refused".into(),
    };
    // A retry is counted (and logged).
    let wait = pool
        .send(Decide {
            error: refused.clone(),
            retries_done: 0,
            elapsed: Duration::ZERO,
        })
        .await
        .unwrap();
    assert!(matches!(wait, RetryDecision::Wait(_)));
    assert!(metrics
        .render(std::time::SystemTime::now())
        .contains("jupyterhub_idle_culler_retries_total 1"));
    // The retries run out: the hub is down for the rest of the pass.
    let gave_up = pool
        .send(Decide {
            error: refused,
            retries_done: 5,
            elapsed: Duration::ZERO,
        })
        .await
        .unwrap();
    assert!(matches!(
        gave_up,
        RetryDecision::GiveUp(GiveUp::NoRetriesLeft { .. })
    ));
    assert!(pool.send(FoundHubDown).await.unwrap());
    assert_eq!(
        pool.send(delete("a")).await.unwrap(),
        Err(AttemptError::HubDown)
    );
    // A probe goes all the same (and finds the port closed).
    let probe = Dispatch {
        despite_outage: true,
        ..version()
    };
    assert!(matches!(
        pool.send(probe).await.unwrap(),
        Err(AttemptError::Hub(HubError::Unreachable { .. }))
    ));
    // The next pass tries again.
    pool.send(BeginPass).await.unwrap();
    assert!(!pool.send(FoundHubDown).await.unwrap());
    assert!(matches!(
        pool.send(delete("a")).await.unwrap(),
        Err(AttemptError::Hub(HubError::Unreachable { .. }))
    ));
}
