use super::*;
use serde_json::{json, Value};
use std::sync::atomic::AtomicUsize;

#[test]
fn python_level_names_and_numbers() {
    assert_eq!("debug".parse(), Ok(LogLevel::Debug));
    assert_eq!("INFO".parse(), Ok(LogLevel::Info));
    assert_eq!("Warning".parse(), Ok(LogLevel::Warn));
    assert_eq!("CRITICAL".parse(), Ok(LogLevel::Error));
    assert_eq!("30".parse(), Ok(LogLevel::Warn));
    assert!("loud".parse::<LogLevel>().unwrap_err().contains("loud"));
}

/// A writer like a pipe whose reader has gone away.
struct BrokenPipe;

impl io::Write for BrokenPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_line_that_cannot_be_written_is_dropped_and_counted_not_a_panic() {
    let log = Log::to_writer(BrokenPipe, LogLevel::Debug, LogFormat::Text, Vec::new());
    info!(log, "one");
    error!(log, "two");
    assert_eq!(log.dropped(), 2);
}

#[test]
fn secrets_are_scrubbed_from_every_line() {
    let out = Captured::default();
    let log = Log::to_writer(
        out.clone(),
        LogLevel::Info,
        LogFormat::Text,
        vec!["s3cr3t-token".into()],
    );
    info!(log, "version \"s3cr3t-token\" and again s3cr3t-token.");
    let text = out.text();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert_eq!(text.matches("<redacted>").count(), 2, "{text}");
}

#[test]
fn lines_below_the_level_are_not_written() {
    let out = Captured::default();
    let log = Log::to_writer(out.clone(), LogLevel::Warn, LogFormat::Text, Vec::new());
    info!(log, "quiet");
    warning!(log, "loud");
    let text = out.text();
    assert!(
        !text.contains("quiet") && text.contains("WARN loud"),
        "{text}"
    );
    assert_eq!(log.dropped(), 0);
}

#[test]
fn panic_payloads_of_both_kinds_give_their_text() {
    let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
    let borrowed: Box<dyn std::any::Any + Send> = Box::new("borrowed");
    let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
    assert_eq!(panic_text(owned.as_ref()), "owned");
    assert_eq!(panic_text(borrowed.as_ref()), "borrowed");
    assert_eq!(panic_text(other.as_ref()), "(no message)");
}
#[test]
fn log_formats_in_any_case_and_errors_that_name_the_flag() {
    assert_eq!("text".parse(), Ok(LogFormat::Text));
    assert_eq!("TEXT".parse(), Ok(LogFormat::Text));
    assert_eq!("json".parse(), Ok(LogFormat::Json));
    assert_eq!("Json".parse(), Ok(LogFormat::Json));
    assert_eq!(" json ".parse(), Ok(LogFormat::Json));
    assert_eq!(LogFormat::default(), LogFormat::Text);
    for format in [LogFormat::Text, LogFormat::Json] {
        assert_eq!(format.to_string().parse(), Ok(format));
    }
    for wrong in ["yaml", "", "jsonl", "text json"] {
        let err = wrong.parse::<LogFormat>().unwrap_err();
        assert!(
            err.contains("--log-format")
                && err.contains(&format!("{wrong:?}"))
                && err.contains("text")
                && err.contains("json"),
            "{err}"
        );
    }
}

/// A JSON log at `level` writing to a buffer.
fn json_log(level: LogLevel, secrets: &[&str]) -> (Log, Captured) {
    let out = Captured::default();
    let secrets = secrets.iter().map(|s| s.to_string()).collect();
    let log = Log::to_writer(out.clone(), level, LogFormat::Json, secrets);
    (log, out)
}

#[test]
fn any_other_slog_value_is_scrubbed_text_and_an_absent_one_is_left_out() {
    let (log, out) = json_log(LogLevel::Info, &["s3cr3t"]);
    slog::info!(log.logger, "m"; "flag" => true, "said" => format_args!("a s3cr3t b"), "missing" => None::<u64>);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["flag"], "true");
    assert_eq!(lines[0]["said"], "a <redacted> b");
    assert!(lines[0].get("missing").is_none(), "{}", lines[0]);
}

/// Every line written, each parsed as one JSON object.
fn json_lines(out: &Captured) -> Vec<Value> {
    let text = out.text();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.split_terminator('\n')
        .map(|line| {
            assert!(line.starts_with("{\"time\":\""), "{line}");
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

/// The line without its `time`, after checking that `time` is now in
/// UTC RFC 3339 with microseconds.
fn without_time(mut line: Value) -> Value {
    let time = line["time"].as_str().expect("a time").to_owned();
    assert_eq!(time.len(), "2026-12-01T16:00:00.123456Z".len(), "{time}");
    assert!(time.ends_with('Z'), "{time}");
    let parsed = chrono::DateTime::parse_from_rfc3339(&time).expect("RFC 3339");
    let skew = (Utc::now() - parsed.with_timezone(&Utc)).num_seconds();
    assert!(skew.abs() < 60, "{time}");
    line.as_object_mut().unwrap().remove("time");
    line
}

/// The text line without slog-term's local time (`Nov 25 22:40:01.123 `),
/// after checking its shape.
fn without_text_time(line: &str) -> &str {
    let (time, rest) = line.split_at(20);
    let shape: String = time
        .chars()
        .map(|c| match c {
            '0'..='9' => '9',
            'A'..='Z' | 'a'..='z' => 'a',
            c => c,
        })
        .collect();
    assert_eq!(shape, "aaa 99 99:99:99.999 ", "{line:?}");
    rest
}

/// Every field, as a server cull has them.
fn culled_server() -> Fields<'static> {
    Fields::new()
        .user("ada")
        .server("")
        .action("stop")
        .reason("idle")
        .idle(Some(3723))
        .age(Some(18000))
}

#[test]
fn json_lines_have_exactly_the_expected_keys_and_values() {
    let (log, out) = json_log(LogLevel::Debug, &[]);
    info_fields!(
        log,
        culled_server(),
        "Culling server {} (reason: idle, inactive for 01:02:03, age: 05:00:00)",
        "ada"
    );
    debug!(log, "plain {}", 1);
    warning_fields!(
        log,
        Fields::new()
            .user("bob")
            .server("gpu")
            .action("skip")
            .reason("pending spawn"),
        "Not culling server bob/gpu: pending spawn"
    );
    error!(log, "Failed to stop server bob/gpu: 500");
    let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
    assert_eq!(
        lines,
        [
            json!({
                "level": "INFO",
                "message": "Culling server ada (reason: idle, inactive for 01:02:03, age: 05:00:00)",
                "user": "ada",
                "server": "",
                "action": "stop",
                "reason": "idle",
                "idle": 3723,
                "age": 18000,
            }),
            json!({"level": "DEBUG", "message": "plain 1"}),
            json!({
                "level": "WARNING",
                "message": "Not culling server bob/gpu: pending spawn",
                "user": "bob",
                "server": "gpu",
                "action": "skip",
                "reason": "pending spawn",
            }),
            json!({"level": "ERROR", "message": "Failed to stop server bob/gpu: 500"}),
        ]
    );
    assert_eq!(log.dropped(), 0);
}

#[test]
fn json_keys_come_in_a_fixed_order() {
    let (log, out) = json_log(LogLevel::Info, &[]);
    info_fields!(log, culled_server(), "m");
    let text = out.text();
    let positions: Vec<usize> = [
        "time", "level", "message", "user", "server", "action", "reason", "idle", "age",
    ]
    .iter()
    .map(|key| text.find(&format!("\"{key}\":")).expect(key))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn fields_are_built_only_for_a_json_line_that_is_written() {
    let built = std::cell::Cell::new(0);
    let fields = || {
        built.set(built.get() + 1);
        Fields::new().user("ada")
    };
    let (json, _out) = json_log(LogLevel::Info, &[]);
    debug_fields!(json, fields(), "below the level");
    assert_eq!(built.get(), 0, "a line below the level built its fields");
    info_fields!(json, fields(), "written");
    assert_eq!(built.get(), 1);
    let text = Log::to_writer(
        Captured::default(),
        LogLevel::Debug,
        LogFormat::Text,
        vec![],
    );
    info_fields!(text, fields(), "text lines carry no fields");
    assert_eq!(built.get(), 1, "a text line built fields it never prints");
}

#[test]
fn absent_fields_are_omitted_not_null() {
    let (log, out) = json_log(LogLevel::Info, &[]);
    info_fields!(
        log,
        Fields::new().user("ada").idle(None).age(None),
        "User ada: idle and age unknown"
    );
    info_fields!(log, Fields::new(), "no fields at all");
    assert!(!out.text().contains("null"), "{}", out.text());
    let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
    assert_eq!(
        lines,
        [
            json!({"level": "INFO", "message": "User ada: idle and age unknown", "user": "ada"}),
            json!({"level": "INFO", "message": "no fields at all"}),
        ]
    );
}

#[test]
fn text_lines_with_fields_are_byte_identical_to_lines_without() {
    let out = Captured::default();
    let log = Log::to_writer(out.clone(), LogLevel::Debug, LogFormat::Text, Vec::new());
    let message = "Culling server ada (reason: idle, inactive for 01:02:03, age: 05:00:00)";
    info_fields!(log, culled_server(), "{message}");
    info!(log, "{message}");
    warning_fields!(
        log,
        Fields::new().user("bob").reason("pending spawn"),
        "{message}"
    );
    warning!(log, "{message}");
    let text = out.text();
    let lines: Vec<&str> = text.split_inclusive('\n').map(without_text_time).collect();
    assert_eq!(
        lines,
        [
            format!("INFO {message}\n"),
            format!("INFO {message}\n"),
            format!("WARN {message}\n"),
            format!("WARN {message}\n"),
        ],
        "{text}"
    );
}

/// Counts how often it is formatted.
#[derive(Default)]
struct CountsFormatting(AtomicUsize);

impl fmt::Display for CountsFormatting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::Relaxed);
        f.write_str("formatted")
    }
}

#[test]
fn the_level_is_checked_before_formatting_in_both_formats() {
    for format in [LogFormat::Text, LogFormat::Json] {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Warn, format, Vec::new());
        let counter = CountsFormatting::default();
        debug!(log, "{counter}");
        info!(log, "{counter}");
        info_fields!(log, culled_server(), "{counter}");
        assert_eq!(counter.0.load(Ordering::Relaxed), 0, "{format}");
        assert_eq!(out.text(), "", "{format}");
        warning_fields!(log, culled_server(), "{counter}");
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "{format}: once");
        assert_eq!(out.text().lines().count(), 1, "{format}");
    }
}

#[test]
fn secrets_are_scrubbed_from_json_messages_and_every_field_value() {
    let (log, out) = json_log(LogLevel::Info, &["s3cr3t-token"]);
    error_fields!(
        log,
        Fields::new()
            .user("s3cr3t-token")
            .server("a s3cr3t-token b")
            .action("delete")
            .reason(String::from("token s3cr3t-token in a reason")),
        "version \"s3cr3t-token\" and again s3cr3t-token."
    );
    let text = out.text();
    assert!(!text.contains("s3cr3t"), "{text}");
    let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
    assert_eq!(
        lines,
        [json!({
            "level": "ERROR",
            "message": "version \"<redacted>\" and again <redacted>.",
            "user": "<redacted>",
            "server": "a <redacted> b",
            "action": "delete",
            "reason": "token <redacted> in a reason",
        })]
    );
}

#[test]
fn a_number_field_holding_an_all_digit_secret_is_scrubbed_too() {
    let (log, out) = json_log(LogLevel::Info, &["18000"]);
    info_fields!(log, culled_server(), "age 18000");
    let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
    assert_eq!(lines[0]["message"], "age <redacted>");
    assert_eq!(lines[0]["age"], "<redacted>");
    assert_eq!(lines[0]["idle"], 3723);
}

#[test]
fn a_json_line_that_cannot_be_written_is_dropped_and_counted_not_a_panic() {
    let log = Log::to_writer(BrokenPipe, LogLevel::Debug, LogFormat::Json, Vec::new());
    info!(log, "one");
    error_fields!(log, culled_server(), "two");
    debug_fields!(log, culled_server(), "three");
    assert_eq!(log.dropped(), 3);
}

#[test]
fn json_lines_stay_valid_and_single_whatever_the_text_holds() {
    let nasty = [
        "quote \" backslash \\ slash /",
        "newline \n carriage return \r tab \t",
        "nul \0 escape \x1b[31m bell \x07 delete \x7f",
        "a hub's lossy bytes \u{fffd}\u{fffd} and \u{feff}",
        "line separators \u{2028} \u{2029}, crab \u{1f980}, accents éü",
        "{\"json\": [\"inside\"]} </script>",
    ];
    let (log, out) = json_log(LogLevel::Info, &[]);
    for text in nasty {
        info_fields!(log, Fields::new().user(text).reason(text), "{text}");
    }
    let lines = json_lines(&out);
    assert_eq!(lines.len(), nasty.len(), "{}", out.text());
    for (line, text) in lines.iter().zip(nasty) {
        assert_eq!(line["message"], text);
        assert_eq!(line["user"], text);
        assert_eq!(line["reason"], text);
    }
}

#[test]
fn fields_into_owned_keep_every_value() {
    let user = String::from("ada");
    let borrowed = Fields::new()
        .user(user.as_str())
        .server("x")
        .action("remove")
        .reason("max-age")
        .idle(Some(1))
        .age(None);
    let owned: Fields<'static> = borrowed.clone().into_owned();
    drop(user);
    assert_eq!(
        owned,
        Fields::new()
            .user("ada")
            .server("x")
            .action("remove")
            .reason("max-age")
            .idle(Some(1))
    );
}

#[test]
fn the_panic_hook_reports_through_the_log_in_both_formats() {
    // The hook is process-wide: put the test harness's back at once.
    // (A test panicking on another thread meanwhile is reported here.)
    let previous = std::panic::take_hook();
    let mut written = Vec::new();
    for format in [LogFormat::Text, LogFormat::Json] {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Info, format, vec!["s3cr3t".into()]);
        log.install_panic_hook();
        let _ = std::panic::catch_unwind(|| panic!("hook test {format} s3cr3t"));
        written.push(out);
    }
    std::panic::set_hook(previous);

    let text = written[0].text();
    assert!(
        text.lines().any(|line| {
            let line = without_text_time(line);
            line.starts_with("ERRO Bug: panic at src/logging/tests.rs:")
                && line.ends_with(": hook test text <redacted>")
        }),
        "{text}"
    );
    assert!(
        json_lines(&written[1]).into_iter().any(|line| {
            let message = line["message"].as_str().unwrap_or_default();
            line["level"] == "ERROR"
                && message.starts_with("Bug: panic at src/logging/tests.rs:")
                && message.ends_with(": hook test json <redacted>")
        }),
        "{}",
        written[1].text()
    );
}
