use super::*;

/// A fixed start: 2026-01-01T00:00:00Z.
fn epoch_2026() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn counts(n: u64) -> PassCounts {
    PassCounts {
        users_seen: n,
        servers_seen: n + 1,
        servers_stopped: n + 2,
        named_servers_removed: n + 3,
        users_deleted: n + 4,
        errors: n + 5,
    }
}

/// The value of the one line that starts with `series ` (the whole name
/// and label set), as text.
fn value_of<'a>(text: &'a str, series: &str) -> &'a str {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .collect();
    assert_eq!(lines.len(), 1, "{series} in\n{text}");
    lines[0]
}

#[test]
fn an_empty_registry_renders_every_family_with_zeros() {
    let metrics = Metrics::started_at(epoch_2026());
    let text = metrics.render(epoch_2026() + Duration::from_secs(42));
    for outcome in ["success", "failure", "interrupted"] {
        let series = format!("jupyterhub_idle_culler_passes_total{{outcome=\"{outcome}\"}}");
        assert_eq!(value_of(&text, &series), "0");
    }
    for name in [
        "users_seen_total",
        "servers_seen_total",
        "servers_stopped_total",
        "named_servers_removed_total",
        "users_deleted_total",
        "errors_total",
        "retries_total",
        "pass_duration_seconds_count",
        "pass_duration_seconds_sum",
        "last_successful_pass_timestamp_seconds",
        "consecutive_failed_passes",
        "log_lines_dropped_total",
    ] {
        assert_eq!(
            value_of(&text, &format!("{NAMESPACE}_{name}")),
            "0",
            "{name}"
        );
    }
    // Before any success, counted from the start.
    assert_eq!(
        value_of(
            &text,
            "jupyterhub_idle_culler_seconds_since_last_successful_pass"
        ),
        "42"
    );
    assert_eq!(
        value_of(
            &text,
            &format!(
                "jupyterhub_idle_culler_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        "1"
    );
    // No request yet: the family is declared, with no series.
    assert!(text.contains("# TYPE jupyterhub_idle_culler_requests_total counter\n"));
    assert!(!text.contains("requests_total{"), "{text}");
}

#[test]
fn passes_are_counted_by_outcome_and_their_counts_summed() {
    let metrics = Metrics::started_at(epoch_2026());
    let at = |s| epoch_2026() + Duration::from_secs(s);
    metrics.record_pass(
        PassOutcome::Success,
        Duration::from_millis(5),
        counts(10),
        at(60),
    );
    metrics.record_pass(
        PassOutcome::Failure,
        Duration::from_secs(3),
        counts(100),
        at(120),
    );
    metrics.record_pass(
        PassOutcome::Interrupted,
        Duration::from_secs(700),
        PassCounts::default(),
        at(180),
    );
    let text = metrics.render(at(200));
    let value = |name: &str| value_of(&text, &format!("{NAMESPACE}_{name}")).to_owned();
    assert_eq!(value("passes_total{outcome=\"success\"}"), "1");
    assert_eq!(value("passes_total{outcome=\"failure\"}"), "1");
    assert_eq!(value("passes_total{outcome=\"interrupted\"}"), "1");
    assert_eq!(value("users_seen_total"), "110");
    assert_eq!(value("servers_seen_total"), "112");
    assert_eq!(value("servers_stopped_total"), "114");
    assert_eq!(value("named_servers_removed_total"), "116");
    assert_eq!(value("users_deleted_total"), "118");
    assert_eq!(value("errors_total"), "120");
    // The failure counts; the interrupted pass leaves the count alone.
    assert_eq!(value("consecutive_failed_passes"), "1");
    assert_eq!(
        value("last_successful_pass_timestamp_seconds"),
        "1767225660"
    );
    assert_eq!(value("seconds_since_last_successful_pass"), "140");
    // 5 ms falls in the first bucket, 3 s in le=5, 700 s only in +Inf.
    assert_eq!(value("pass_duration_seconds_bucket{le=\"0.01\"}"), "1");
    assert_eq!(value("pass_duration_seconds_bucket{le=\"2.5\"}"), "1");
    assert_eq!(value("pass_duration_seconds_bucket{le=\"5\"}"), "2");
    assert_eq!(value("pass_duration_seconds_bucket{le=\"600\"}"), "2");
    assert_eq!(value("pass_duration_seconds_bucket{le=\"+Inf\"}"), "3");
    assert_eq!(value("pass_duration_seconds_count"), "3");
    let sum: f64 = value("pass_duration_seconds_sum").parse().unwrap();
    assert!((sum - 703.005).abs() < 1e-9, "{sum}");
}

#[test]
fn a_bucket_bound_is_inclusive() {
    let metrics = Metrics::started_at(epoch_2026());
    metrics.pass_finished(PassOutcome::Success, Duration::from_secs(1), counts(0));
    let text = metrics.render(SystemTime::now());
    assert_eq!(
        value_of(
            &text,
            "jupyterhub_idle_culler_pass_duration_seconds_bucket{le=\"0.5\"}"
        ),
        "0"
    );
    assert_eq!(
        value_of(
            &text,
            "jupyterhub_idle_culler_pass_duration_seconds_bucket{le=\"1\"}"
        ),
        "1"
    );
}

#[test]
fn requests_are_counted_by_method_endpoint_and_status_in_sorted_order() {
    let metrics = Metrics::started_at(epoch_2026());
    metrics.request("DELETE", Endpoint::User, Some(204));
    metrics.request("get", Endpoint::Users, Some(200));
    metrics.request("GET", Endpoint::Users, Some(200));
    metrics.request("GET", Endpoint::Users, None);
    metrics.request("GET", Endpoint::Root, Some(503));
    metrics.request("BREW", Endpoint::Root, Some(418));
    metrics.retry();
    metrics.retry();
    let text = metrics.render(epoch_2026());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("jupyterhub_idle_culler_requests_total{"))
        .collect();
    assert_eq!(
        lines,
        [
            r#"jupyterhub_idle_culler_requests_total{endpoint="/",method="GET",status="503"} 1"#,
            r#"jupyterhub_idle_culler_requests_total{endpoint="/",method="other",status="418"} 1"#,
            r#"jupyterhub_idle_culler_requests_total{endpoint="/users",method="GET",status="200"} 2"#,
            r#"jupyterhub_idle_culler_requests_total{endpoint="/users",method="GET",status="none"} 1"#,
            r#"jupyterhub_idle_culler_requests_total{endpoint="/users/{name}",method="DELETE",status="204"} 1"#,
        ]
    );
    assert_eq!(value_of(&text, "jupyterhub_idle_culler_retries_total"), "2");
}

#[test]
fn rendering_is_stable() {
    let metrics = Metrics::started_at(epoch_2026());
    for endpoint in Endpoint::ALL.into_iter().rev() {
        metrics.request("DELETE", endpoint, Some(404));
        metrics.request("GET", endpoint, None);
    }
    let now = epoch_2026() + Duration::from_secs(1);
    assert_eq!(metrics.render(now), metrics.render(now));
}

#[test]
fn every_family_has_help_and_type_before_its_samples() {
    let metrics = Metrics::started_at(epoch_2026());
    metrics.request("GET", Endpoint::Root, Some(200));
    let text = metrics.render(epoch_2026());
    let mut declared: Vec<String> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            let kind = lines.next().unwrap();
            assert!(kind.starts_with(&format!("# TYPE {name} ")), "{kind}");
            assert!(!declared.contains(&name.to_owned()), "{name} twice");
            declared.push(name.to_owned());
        } else {
            let family = declared.last().expect("a sample before any # HELP");
            assert!(line.starts_with(family.as_str()), "{line} under {family}");
        }
    }
    assert_eq!(declared.len(), 18, "{declared:?}");
    assert!(declared
        .iter()
        .all(|n| n.starts_with("jupyterhub_idle_culler_")));
    assert!(text.ends_with('\n'));
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
    assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
    assert_eq!(escape_label_value("/users/{name}"), "/users/{name}");
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
}

#[test]
fn health_follows_consecutive_failures() {
    let metrics = Metrics::started_at(epoch_2026());
    let health = metrics.health(3);
    assert_eq!(health.status, HealthStatus::Starting);
    assert!(health.is_healthy());
    // An interrupted pass judges nothing.
    metrics.pass_finished(PassOutcome::Interrupted, Duration::ZERO, counts(0));
    assert_eq!(metrics.health(3).status, HealthStatus::Starting);

    let at = epoch_2026() + Duration::from_secs(600);
    metrics.record_pass(PassOutcome::Success, Duration::ZERO, counts(0), at);
    let health = metrics.health(3);
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.last_success, Some(at));
    assert_eq!(
        health.reason(),
        "the last pass succeeded; the last successful pass finished at 2026-01-01T00:10:00Z"
    );
    for failed in 1..=2 {
        metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
        let health = metrics.health(3);
        assert_eq!(health.status, HealthStatus::Ok, "{failed}");
        assert_eq!(health.consecutive_failed_passes, failed);
        if failed == 1 {
            assert!(
                health.reason().starts_with("1 pass in a row failed"),
                "{health:?}"
            );
        }
    }
    metrics.pass_finished(PassOutcome::Interrupted, Duration::ZERO, counts(0));
    metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
    let health = metrics.health(3);
    assert_eq!(health.status, HealthStatus::Failing);
    assert!(!health.is_healthy());
    assert_eq!(health.consecutive_failed_passes, 3);
    let reason = health.reason();
    assert!(reason.contains("3 passes in a row failed"), "{reason}");
    assert!(reason.contains("2026-01-01T00:10:00Z"), "{reason}");
    // A higher limit tolerates it; 0 means 1.
    assert!(metrics.health(4).is_healthy());
    assert_eq!(metrics.health(0).max_failures, 1);

    metrics.pass_finished(PassOutcome::Success, Duration::ZERO, counts(0));
    let health = metrics.health(3);
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.consecutive_failed_passes, 0);
}

#[test]
fn failing_from_the_start_is_unhealthy_and_says_never() {
    let metrics = Metrics::started_at(epoch_2026());
    metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
    let health = metrics.health(1);
    assert_eq!(health.status, HealthStatus::Failing);
    assert!(
        health.reason().contains("no pass has succeeded"),
        "{}",
        health.reason()
    );
}

#[test]
fn health_json_has_the_documented_fields() {
    let metrics = Metrics::started_at(epoch_2026());
    let json: serde_json::Value = serde_json::from_str(&metrics.health(3).to_json()).unwrap();
    assert_eq!(json["status"], "starting");
    assert_eq!(json["consecutive_failed_passes"], 0);
    assert_eq!(json["max_failures"], 3);
    assert!(json["last_success"].is_null());
    assert_eq!(json["reason"], "no pass has finished yet");
    assert!(metrics
        .health(3)
        .to_json()
        .starts_with(r#"{"status":"starting","#));

    let at = epoch_2026() + Duration::from_secs(1);
    metrics.record_pass(PassOutcome::Success, Duration::ZERO, counts(0), at);
    let json: serde_json::Value = serde_json::from_str(&metrics.health(3).to_json()).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["last_success"], "2026-01-01T00:00:01Z");
}

#[test]
fn the_logs_dropped_lines_are_read_at_render_time() {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let metrics = Metrics::started_at(epoch_2026());
    metrics.count_dropped_lines(Arc::clone(&counter));
    counter.store(2, std::sync::atomic::Ordering::Relaxed);
    let text = metrics.render(epoch_2026());
    assert_eq!(
        value_of(&text, "jupyterhub_idle_culler_log_lines_dropped_total"),
        "2"
    );
}

#[test]
fn floats_are_written_as_the_format_reads_them() {
    assert_eq!(float(f64::INFINITY), "+Inf");
    assert_eq!(float(f64::NEG_INFINITY), "-Inf");
    assert_eq!(float(f64::NAN), "NaN");
    assert_eq!(float(600.0), "600");
    assert_eq!(float(0.025), "0.025");
    assert_eq!(float(1_767_225_600.5), "1767225600.5");
}

/// The exposition read back by an independent, grammar-based parser of
/// the Prometheus text format (openmetrics-parser, a dev-dependency).
mod parsed {
    use super::*;
    use openmetrics_parser::prometheus::parse_prometheus;
    use openmetrics_parser::{PrometheusType, PrometheusValue};

    /// A registry after a few of everything: four users' servers stopped
    /// and their deletions failing without an answer.
    fn busy() -> Arc<Metrics> {
        let metrics = Metrics::started_at(epoch_2026());
        for _user in 0..4 {
            metrics.request("GET", Endpoint::Users, Some(200));
            metrics.request("DELETE", Endpoint::UserServer, Some(204));
            metrics.request("DELETE", Endpoint::NamedServer, Some(202));
            metrics.request("DELETE", Endpoint::User, None);
        }
        metrics.request("GET", Endpoint::Root, Some(200));
        metrics.retry();
        let at = |s| epoch_2026() + Duration::from_secs(s);
        metrics.record_pass(
            PassOutcome::Success,
            Duration::from_millis(80),
            counts(4),
            at(10),
        );
        metrics.record_pass(
            PassOutcome::Failure,
            Duration::from_secs(45),
            counts(1),
            at(20),
        );
        metrics.record_pass(
            PassOutcome::Success,
            Duration::from_secs(2),
            counts(2),
            at(30),
        );
        metrics.record_pass(
            PassOutcome::Interrupted,
            Duration::from_secs(900),
            PassCounts::default(),
            at(40),
        );
        for outcome in ["in_use", "timeout", "idle", "in_use"] {
            metrics.server_look(outcome);
        }
        for (event, outcome) in [("warn", "sent"), ("culled", "dropped"), ("warn", "sent")] {
            metrics.notify_event(event, outcome);
        }
        metrics.server_stuck("spawn");
        metrics
    }

    fn number(value: &PrometheusValue) -> f64 {
        match value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => g.as_f64(),
            other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn every_family_parses_with_its_type_labels_and_values() {
        let text = busy().render(epoch_2026() + Duration::from_secs(100));
        let parsed = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let families = &parsed.families;
        let name = |short: &str| format!("{NAMESPACE}_{short}");
        let expected: [(&str, PrometheusType, &[&str]); 18] = [
            ("passes_total", PrometheusType::Counter, &["outcome"]),
            ("pass_duration_seconds", PrometheusType::Histogram, &[]),
            ("users_seen_total", PrometheusType::Counter, &[]),
            ("servers_seen_total", PrometheusType::Counter, &[]),
            ("servers_stopped_total", PrometheusType::Counter, &[]),
            ("named_servers_removed_total", PrometheusType::Counter, &[]),
            ("users_deleted_total", PrometheusType::Counter, &[]),
            ("errors_total", PrometheusType::Counter, &[]),
            (
                "requests_total",
                PrometheusType::Counter,
                &["endpoint", "method", "status"],
            ),
            ("retries_total", PrometheusType::Counter, &[]),
            ("server_looks_total", PrometheusType::Counter, &["outcome"]),
            (
                "notify_events_total",
                PrometheusType::Counter,
                &["event", "outcome"],
            ),
            ("servers_stuck_total", PrometheusType::Counter, &["pending"]),
            (
                "last_successful_pass_timestamp_seconds",
                PrometheusType::Gauge,
                &[],
            ),
            (
                "seconds_since_last_successful_pass",
                PrometheusType::Gauge,
                &[],
            ),
            ("consecutive_failed_passes", PrometheusType::Gauge, &[]),
            ("log_lines_dropped_total", PrometheusType::Counter, &[]),
            ("build_info", PrometheusType::Gauge, &["version"]),
        ];
        assert_eq!(families.len(), expected.len(), "{:?}", families.keys());
        for (short, kind, labels) in &expected {
            let family = families
                .get(&name(short))
                .unwrap_or_else(|| panic!("{short} missing"));
            assert_eq!(&family.family_type, kind, "{short}");
            assert!(!family.help.is_empty(), "{short} has no help");
            let mut names = family.get_label_names().to_vec();
            names.sort();
            assert_eq!(names, *labels, "{short}");
        }

        let single = |short: &str| {
            let family = &families[&name(short)];
            let samples: Vec<_> = family.iter_samples().collect();
            assert_eq!(samples.len(), 1, "{short}");
            number(&samples[0].value)
        };
        assert_eq!(single("users_seen_total"), 7.0);
        assert_eq!(single("servers_seen_total"), 10.0);
        assert_eq!(single("servers_stopped_total"), 13.0);
        assert_eq!(single("named_servers_removed_total"), 16.0);
        assert_eq!(single("users_deleted_total"), 19.0);
        assert_eq!(single("errors_total"), 22.0);
        assert_eq!(single("retries_total"), 1.0);
        let looks: Vec<(String, f64)> = families[&name("server_looks_total")]
            .iter_samples()
            .map(|s| {
                let labels = s.get_labelset().unwrap();
                let outcome = labels.get_label_value("outcome").unwrap().to_owned();
                (outcome, number(&s.value))
            })
            .collect();
        assert_eq!(
            looks,
            [
                ("idle".to_owned(), 1.0),
                ("in_use".to_owned(), 2.0),
                ("timeout".to_owned(), 1.0)
            ]
        );
        let events: Vec<(String, String, f64)> = families[&name("notify_events_total")]
            .iter_samples()
            .map(|s| {
                let labels = s.get_labelset().unwrap();
                let label = |n: &str| labels.get_label_value(n).unwrap().to_owned();
                (label("event"), label("outcome"), number(&s.value))
            })
            .collect();
        assert_eq!(
            events,
            [
                ("culled".to_owned(), "dropped".to_owned(), 1.0),
                ("warn".to_owned(), "sent".to_owned(), 2.0)
            ]
        );
        let stuck = &families[&name("servers_stuck_total")];
        let samples: Vec<_> = stuck.iter_samples().collect();
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0]
                .get_labelset()
                .unwrap()
                .get_label_value("pending"),
            Some("spawn")
        );
        assert_eq!(number(&samples[0].value), 1.0);
        assert_eq!(single("consecutive_failed_passes"), 0.0);
        assert_eq!(
            single("last_successful_pass_timestamp_seconds"),
            1_767_225_630.0
        );
        assert_eq!(single("seconds_since_last_successful_pass"), 70.0);
        assert_eq!(single("log_lines_dropped_total"), 0.0);
        assert_eq!(single("build_info"), 1.0);

        let passes = &families[&name("passes_total")];
        for (outcome, count) in [("success", 2.0), ("failure", 1.0), ("interrupted", 1.0)] {
            let sample = passes
                .get_sample_by_label_values(&[outcome.to_owned()])
                .unwrap_or_else(|| panic!("{outcome}"));
            assert_eq!(number(&sample.value), count, "{outcome}");
        }

        let requests = &families[&name("requests_total")];
        let mut seen = Vec::new();
        for sample in requests.iter_samples() {
            let labels = sample.get_labelset().unwrap();
            let get = |label| labels.get_label_value(label).unwrap().to_owned();
            seen.push((
                get("endpoint"),
                get("method"),
                get("status"),
                number(&sample.value),
            ));
        }
        seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let row = |e: &str, m: &str, s: &str, n| (e.to_owned(), m.to_owned(), s.to_owned(), n);
        assert_eq!(
            seen,
            [
                row("/", "GET", "200", 1.0),
                row("/users", "GET", "200", 4.0),
                row("/users/{name}", "DELETE", "none", 4.0),
                row("/users/{name}/server", "DELETE", "204", 4.0),
                row("/users/{name}/servers/{server}", "DELETE", "202", 4.0),
            ]
        );
    }

    #[test]
    fn the_histogram_is_cumulative_and_ends_in_its_count() {
        let text = busy().render(epoch_2026());
        let parsed = parse_prometheus(&text).unwrap();
        let family = &parsed.families[&format!("{NAMESPACE}_pass_duration_seconds")];
        let samples: Vec<_> = family.iter_samples().collect();
        assert_eq!(samples.len(), 1);
        let PrometheusValue::Histogram(histogram) = &samples[0].value else {
            panic!("{:?}", samples[0].value);
        };
        let bounds: Vec<f64> = histogram.buckets.iter().map(|b| b.upper_bound).collect();
        let mut expected = PASS_DURATION_BUCKETS.to_vec();
        expected.push(f64::INFINITY);
        assert_eq!(bounds, expected);
        let counts: Vec<f64> = histogram.buckets.iter().map(|b| b.count.as_f64()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        // 80 ms, 2 s, 45 s and 900 s.
        assert_eq!(counts[..4], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(*counts.last().unwrap(), 4.0);
        assert_eq!(histogram.count, Some(4));
        let sum = histogram.sum.map(|s| s.as_f64()).unwrap();
        assert!((sum - 947.08).abs() < 1e-9, "{sum}");
    }

    /// Every label value comes from a small fixed set, so no user or
    /// server name can be among them (the API takes none: requests are
    /// counted by [`Endpoint`], whose values are the path templates).
    #[test]
    fn label_values_come_only_from_bounded_sets() {
        let text = busy().render(epoch_2026());
        let parsed = parse_prometheus(&text).unwrap();
        for family in parsed.families.values() {
            for sample in family.iter_samples() {
                let labels = sample.get_labelset().unwrap();
                for (label, value) in labels.iter() {
                    let allowed = match label.as_str() {
                        "outcome" if family.family_name.ends_with("server_looks_total") => {
                            LOOK_OUTCOMES.contains(&value.as_str())
                        }
                        "outcome" if family.family_name.ends_with("notify_events_total") => {
                            NOTIFY_OUTCOMES.contains(&value.as_str())
                        }
                        "event" => crate::notify::EventKind::ALL
                            .iter()
                            .any(|kind| kind.as_str() == value),
                        "pending" => STUCK_PENDING.contains(&value.as_str()),
                        "outcome" => {
                            ["success", "failure", "interrupted"].contains(&value.as_str())
                        }
                        "endpoint" => Endpoint::ALL.iter().any(|e| e.template() == value),
                        "method" => ["GET", "DELETE"].contains(&value.as_str()),
                        "status" => value == "none" || value.parse::<u16>().is_ok(),
                        "version" => value == env!("CARGO_PKG_VERSION"),
                        _ => false,
                    };
                    assert!(allowed, "{label}={value:?}");
                }
            }
        }
    }

    /// The parser is strict where these tests lean on it; otherwise
    /// passing them would prove little.
    #[test]
    fn the_parser_rejects_what_prometheus_rejects() {
        for bad in [
            // Buckets that go down.
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            // No +Inf bucket.
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            // An unescaped quote in a label value.
            "# TYPE x gauge\nx{v=\"a\"b\"} 1\n",
            // Two label sets in one family.
            "# TYPE x counter\nx{a=\"1\"} 1\nx{b=\"1\"} 1\n",
        ] {
            assert!(parse_prometheus(bad).is_err(), "accepted:\n{bad}");
        }
    }

    #[test]
    fn an_empty_registry_parses_too() {
        let text = Metrics::new().render(SystemTime::now());
        parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    }

    #[test]
    fn escaped_label_values_read_back_as_written() {
        for value in [r#"a\b"#, r#"say "hi""#, "two\nlines", "{braces}", "ünï"] {
            let text = format!(
                "# TYPE x gauge\nx{{v=\"{}\"}} 1\n",
                escape_label_value(value)
            );
            let parsed = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let sample = parsed.families["x"].iter_samples().next().unwrap();
            let labels = sample.get_labelset().unwrap();
            assert_eq!(labels.get_label_value("v"), Some(value));
        }
    }
}

#[test]
fn every_reason_a_server_could_not_be_asked_is_a_known_outcome() {
    use crate::hub::LookError;
    let request = String::new;
    for err in [
        LookError::NoProxy,
        LookError::NoUrl,
        LookError::Unreachable {
            request: request(),
            detail: String::new(),
        },
        LookError::Timeout {
            request: request(),
            limit: Duration::from_secs(1),
        },
        LookError::Forbidden { request: request() },
        LookError::Status {
            request: request(),
            status: 404,
        },
        LookError::NotJupyter {
            request: request(),
            detail: String::new(),
        },
    ] {
        assert!(LOOK_OUTCOMES.contains(&err.label()), "{}", err.label());
    }
}
