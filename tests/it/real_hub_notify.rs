//! Events from a culler working on a real JupyterHub, received by a real
//! HTTP receiver: a server near its timeout is warned, an idle one is
//! culled, and the warned one, left idle, is culled on the next pass.

use std::time::Duration;

use crate::support::real_hub::{HubOptions, RealHub};
use crate::support::receiver::Receiver;

/// Short, as in the other real-hub tests: idleness here is real time.
const TIMEOUT: Duration = Duration::from_secs(3);

#[test]
#[ignore = "needs a real JupyterHub and configurable-http-proxy: run scripts/test"]
fn a_real_hubs_culls_and_warnings_reach_the_receiver() {
    let hub = RealHub::start(HubOptions::default());
    let users = ["leaver", "stayer"];
    hub.create_users(&users);
    for user in users {
        hub.start_server(user, "");
    }
    hub.wait_until_idle(&users, TIMEOUT);
    // `stayer` comes back: active now, 3 s from its deadline, well inside
    // the warning window.
    hub.post_activity("stayer", &[""]);

    let receiver = Receiver::start();
    let args = [
        format!("--timeout={}", TIMEOUT.as_secs()),
        "--warn-before=600".to_owned(),
        format!("--notify-url={}", receiver.url()),
        "--output=json".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = hub.cull_once(&args);
    let events = receiver.events();
    eprintln!("events received from the first pass:");
    for event in &events {
        eprintln!("{}", String::from_utf8_lossy(&event.raw));
    }
    let kinds = |events: &[crate::support::receiver::Received]| {
        events
            .iter()
            .map(|e| (e.user().to_owned(), e.kind().to_owned()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        kinds(&events),
        [("leaver", "culled"), ("stayer", "warn")]
            .map(|(u, k)| (u.to_owned(), k.to_owned()))
            .into(),
        "{first}"
    );
    assert!(!hub.has_server("leaver", ""), "{first}");
    assert!(hub.has_server("stayer", ""), "{first}");
    let warn = events.iter().find(|e| e.kind() == "warn").unwrap();
    assert!(warn.json["seconds_left"].as_u64().unwrap() <= TIMEOUT.as_secs());
    assert!(warn.json["deadline"].is_string());
    for event in &events {
        assert!(!String::from_utf8_lossy(&event.raw).contains(hub.culler_token()));
    }

    // Left idle past its deadline: culled, and told.
    hub.wait_until_idle(&["stayer"], TIMEOUT);
    let second = hub.cull_once(&args);
    let events = receiver.events();
    eprintln!("events received from the second pass:");
    for event in &events[2..] {
        eprintln!("{}", String::from_utf8_lossy(&event.raw));
    }
    assert_eq!(events.len(), 3, "{second}");
    assert_eq!((events[2].user(), events[2].kind()), ("stayer", "culled"));
    assert!(!hub.has_server("stayer", ""), "{second}");
}
