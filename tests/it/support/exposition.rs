//! Reading the culler's `/metrics` as Prometheus would: the text exposition
//! parsed by a real parser (`openmetrics-parser`), not by string matching,
//! so a malformed exposition fails the test. Shared by the fake-hub metrics
//! tests and the real-hub test that scrapes through JupyterHub's proxy.

use std::time::Duration;

use openmetrics_parser::{prometheus::parse_prometheus, PrometheusValue};

/// A GET that returns status and body whatever the status.
pub fn get(url: &str) -> (u16, String) {
    get_as(url, None)
}

/// The same, with `Authorization: token T` when given a token.
pub fn get_as(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("token {token}"));
    }
    match request.call() {
        Ok(response) => (response.status(), response.into_string().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap()),
        Err(err) => panic!("GET {url}: {err}"),
    }
}

/// The value of one sample of a counter or gauge, found by name and labels.
/// Panics (with the text) when the exposition does not parse.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exposition = parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let family = exposition.families.get(name)?;
    let found = family.iter_samples().find_map(|s| {
        let matches = labels.iter().all(|(key, value)| {
            s.get_labelset()
                .ok()
                .and_then(|set| set.get_label_value(key).map(|v| v == *value))
                .unwrap_or(false)
        });
        if !matches {
            return None;
        }
        match &s.value {
            PrometheusValue::Counter(c) => Some(c.value.as_f64()),
            PrometheusValue::Gauge(g) => Some(g.as_f64()),
            PrometheusValue::Unknown(u) => Some(u.as_f64()),
            _ => None,
        }
    });
    found
}
