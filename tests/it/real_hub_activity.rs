//! `--activity=server` against a real JupyterHub with real single-user
//! servers (jupyter-server, ipykernel, terminals): the hub's timestamps
//! call all three servers idle; what runs inside them decides.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::kernels::SingleUser;
use crate::support::real_hub::{parse_iso_utc, sleep_until, HubOptions, RealHub, SpawnerKind};

/// Short, as in the other real-hub tests: idleness here is real time.
const TIMEOUT: Duration = Duration::from_secs(3);

fn timeout_flag() -> String {
    format!("--timeout={}", TIMEOUT.as_secs())
}

fn running(hub: &RealHub, user: &str) -> BTreeSet<String> {
    hub.user(user)
        .and_then(|u| {
            u["servers"]
                .as_object()
                .map(|s| s.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// The decision records of a run, by user.
fn records(stdout: &str) -> BTreeMap<String, Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .filter(|r| !r["server"].is_null())
        .map(|r| (r["user"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
#[ignore = "needs a real JupyterHub, jupyter-server and ipykernel: run scripts/test"]
fn a_busy_kernel_and_a_live_terminal_are_kept_and_an_idle_kernel_is_culled() {
    let hub = RealHub::start(HubOptions {
        spawner: SpawnerKind::JupyterServer,
        culler_extra_scopes: vec!["access:servers".into()],
        ..HubOptions::default()
    });
    let users = ["trainer", "idler", "typist"];
    hub.create_users(&users);
    for user in users {
        hub.start_server(user, "");
    }
    let token = hub.culler_token();
    let server = |user: &str| SingleUser::of(&hub.public_url(), user, token);

    // A training run: busy for ten minutes, no browser attached.
    let trainer = server("trainer");
    let kernel = trainer.start_kernel();
    trainer.run_in_kernel(&hub.python(), &kernel, "import time; time.sleep(600)");
    // A kernel started and left alone.
    let idler = server("idler");
    idler.start_kernel();

    // Past the timeout by the hub's timestamps and by the idle kernel's own.
    hub.wait_until_idle(&users, TIMEOUT);
    for k in idler.kernels() {
        let at = k["last_activity"].as_str().and_then(parse_iso_utc);
        let at = at.unwrap_or_else(|| hub.fail(format!("a kernel without last_activity: {k}")));
        sleep_until(at + TIMEOUT + Duration::from_millis(300));
    }
    // Someone typing in a terminal just now.
    let typist = server("typist");
    typist.open_terminal();
    assert_eq!(typist.terminals().len(), 1, "set-up: one terminal open");
    let busy = trainer.kernels();
    assert_eq!(busy[0]["execution_state"], "busy", "set-up: {busy:?}");

    let proxy = format!("--proxy-url={}", hub.public_url());
    let asked = hub.cull_once(&[
        &timeout_flag(),
        "--activity=server",
        &proxy,
        "--output=json",
    ]);
    eprintln!(
        "decision records under --activity=server:\n{}",
        asked.stdout
    );
    let asked_records = records(&asked.stdout);
    assert_eq!(
        running(&hub, "trainer"),
        BTreeSet::from([String::new()]),
        "{asked}"
    );
    assert_eq!(
        running(&hub, "typist"),
        BTreeSet::from([String::new()]),
        "{asked}"
    );
    assert!(running(&hub, "idler").is_empty(), "{asked}");
    let trainer_record = &asked_records["trainer"];
    assert_eq!(trainer_record["action"], "keep");
    assert_eq!(trainer_record["reason"], "kernel busy");
    assert_eq!(trainer_record["signal"], "server");
    let typist_record = &asked_records["typist"];
    assert_eq!(typist_record["action"], "keep");
    assert!(
        typist_record["reason"]
            .as_str()
            .unwrap()
            .starts_with("terminal active 00:00:0"),
        "{typist_record}"
    );
    let idler_record = &asked_records["idler"];
    assert_eq!(
        (
            &idler_record["action"],
            &idler_record["signal"],
            &idler_record["outcome"]
        ),
        (
            &Value::from("stop"),
            &Value::from("server"),
            &Value::from("done")
        )
    );
    assert!(
        asked
            .stderr
            .contains("Not culling server trainer: kernel busy"),
        "{asked}"
    );

    // The hub's timestamps alone cull the training run and the terminal.
    let by_hub = hub.cull_once(&[&timeout_flag(), "--output=json"]);
    assert!(running(&hub, "trainer").is_empty(), "{by_hub}");
    assert!(running(&hub, "typist").is_empty(), "{by_hub}");
    assert_eq!(records(&by_hub.stdout)["trainer"]["signal"], "hub");
}
