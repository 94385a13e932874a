use super::*;

/// `GET api/kernels` and `GET api/terminals` as jupyter-server 2 answers
/// them (one busy kernel, one that no client attached to, one terminal).
const KERNELS: &str = r#"[
  {"id": "8e1c", "name": "python3", "last_activity": "2026-12-03T20:41:07.412985Z",
   "execution_state": "busy", "connections": 1},
  {"id": "51fa", "name": "python3", "last_activity": "2026-12-03T19:02:00.000001Z",
   "execution_state": "starting", "connections": 0}
]"#;
const TERMINALS: &str = r#"[{"name": "1", "last_activity": "2026-12-03T20:40:00.123456Z"}]"#;
const STATUS: &str = r#"{"started": "2026-12-03T18:00:00.000000Z",
  "last_activity": "2026-12-03T20:41:07.412985Z", "connections": 1, "kernels": 2}"#;

#[test]
fn jupyter_servers_answers_read_as_kernels_terminals_and_connections() {
    let kernels: Vec<Kernel> = serde_json::from_str(KERNELS).unwrap();
    assert_eq!(kernels.len(), 2);
    assert!(kernels[0].busy() && !kernels[1].busy());
    assert_eq!(
        kernels[0].last_activity,
        Some(Timestamp::parse("2026-12-03T20:41:07.412985Z").unwrap())
    );
    let terminals: Vec<Terminal> = serde_json::from_str(TERMINALS).unwrap();
    assert!(terminals[0].last_activity.is_some());
    let status: Status = serde_json::from_str(STATUS).unwrap();
    assert_eq!(status.connections, 1);
}

#[test]
fn an_answer_without_started_is_not_jupyter_servers_status() {
    assert!(serde_json::from_str::<Status>(r#"{"connections": 1}"#).is_err());
    assert!(serde_json::from_str::<Status>(r#"{"version": "6.1.1"}"#).is_err());
}

#[test]
fn each_failure_says_what_to_do_and_has_a_fixed_label() {
    let request = "GET http://proxy/user/ada/api/status".to_owned();
    let forbidden = LookError::Forbidden {
        request: request.clone(),
    };
    assert!(
        forbidden.to_string().contains("access:servers"),
        "{forbidden}"
    );
    let unreachable = LookError::Unreachable {
        request: request.clone(),
        detail: "connection refused".into(),
    };
    assert!(
        unreachable.to_string().contains("--proxy-url"),
        "{unreachable}"
    );
    let timeout = LookError::Timeout {
        request: request.clone(),
        limit: std::time::Duration::from_millis(2500),
    };
    assert!(
        timeout.to_string().ends_with("no answer within 2.5 s"),
        "{timeout}"
    );
    let labels: Vec<_> = [
        LookError::NoProxy,
        LookError::NoUrl,
        unreachable,
        timeout,
        forbidden,
        LookError::Status {
            request: request.clone(),
            status: 503,
        },
        LookError::NotJupyter {
            request,
            detail: "expected value at line 1".into(),
        },
    ]
    .iter()
    .map(LookError::label)
    .collect();
    assert_eq!(
        labels,
        [
            "no_url",
            "no_url",
            "unreachable",
            "timeout",
            "forbidden",
            "status",
            "not_jupyter"
        ]
    );
}
