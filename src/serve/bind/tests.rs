use super::*;

fn flag(value: &str) -> Result<Option<BindAddress>, BindError> {
    bind_address(Some(value), Some("http://10.0.0.1:1"))
}

fn service(url: &str) -> Result<Option<BindAddress>, BindError> {
    bind_address(None, Some(url))
}

fn at(addr: &str, origin: BindOrigin) -> Option<BindAddress> {
    Some(BindAddress {
        addr: addr.parse().unwrap(),
        origin,
    })
}

#[test]
fn the_flag_wins_and_takes_addresses_localhost_and_any() {
    assert_eq!(
        flag("127.0.0.1:9090"),
        Ok(at("127.0.0.1:9090", BindOrigin::Flag))
    );
    assert_eq!(
        flag(" 0.0.0.0:9090 "),
        Ok(at("0.0.0.0:9090", BindOrigin::Flag))
    );
    assert_eq!(flag("[::1]:9090"), Ok(at("[::1]:9090", BindOrigin::Flag)));
    assert_eq!(
        flag("localhost:9090"),
        Ok(at("127.0.0.1:9090", BindOrigin::Flag))
    );
    assert_eq!(flag(":9090"), Ok(at("0.0.0.0:9090", BindOrigin::Flag)));
    assert_eq!(flag("*:9090"), Ok(at("0.0.0.0:9090", BindOrigin::Flag)));
}

#[test]
fn a_bad_flag_says_what_would_be_right() {
    for (value, expected) in [
        ("9090", "HOST:PORT"),
        ("127.0.0.1:", "PORT is a number"),
        ("127.0.0.1:99999", "PORT is a number"),
        ("culler.example.org:9090", "not an IP address"),
        ("::1:9090", "without brackets"),
    ] {
        let err = flag(value).unwrap_err();
        assert!(!err.from_service_url());
        let text = err.to_string();
        assert!(text.contains(expected), "{value}: {text}");
        assert!(text.starts_with("--metrics-bind="), "{text}");
    }
}

#[test]
fn nothing_set_means_no_endpoint() {
    assert_eq!(bind_address(None, None), Ok(None));
    assert_eq!(bind_address(Some(" "), Some("")), Ok(None));
}

#[test]
fn the_service_url_gives_host_and_port() {
    assert_eq!(
        service("http://127.0.0.1:10101"),
        Ok(at("127.0.0.1:10101", BindOrigin::ServiceUrl))
    );
    assert_eq!(
        service("http://127.0.0.1:10101/services/idle-culler/"),
        Ok(at("127.0.0.1:10101", BindOrigin::ServiceUrl))
    );
    assert_eq!(
        service("HTTP://[::1]:8000/"),
        Ok(at("[::1]:8000", BindOrigin::ServiceUrl))
    );
    assert_eq!(
        service("http://localhost:8000"),
        Ok(at("127.0.0.1:8000", BindOrigin::ServiceUrl))
    );
    assert_eq!(
        service("http://10.1.2.3"),
        Ok(at("10.1.2.3:80", BindOrigin::ServiceUrl))
    );
    // A name is how others reach us (a Kubernetes or Docker service):
    // every interface, on its port.
    let named = service("http://idle-culler:8000/").unwrap().unwrap();
    assert_eq!(named.addr, "0.0.0.0:8000".parse().unwrap());
    assert_eq!(
        named.origin,
        BindOrigin::ServiceUrlName("idle-culler".into())
    );
    assert!(named.to_string().contains("all interfaces"), "{named}");
}

#[test]
fn a_bad_service_url_says_why_and_hides_passwords() {
    for (url, expected) in [
        ("https://127.0.0.1:10101", "plain HTTP"),
        ("127.0.0.1:10101", "not an http://"),
        ("ftp://127.0.0.1:10101", "not an http://"),
        ("http://:8000", "has no host"),
        ("http://[::1:8000", "http://HOST:PORT"),
        ("http://host:port", "valid port"),
        ("http://host:99999", "valid port"),
        ("http://bad host:80", "http://HOST:PORT"),
    ] {
        let err = service(url).unwrap_err();
        assert!(err.from_service_url());
        let text = err.to_string();
        assert!(text.contains(expected), "{url}: {text}");
    }
    let text = service("http://me:s3cret@127.0.0.1:80/x")
        .unwrap_err()
        .to_string();
    assert!(text.contains("user name or password"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("***@127.0.0.1:80/x"), "{text}");
}

#[test]
fn a_port_in_use_is_reported_when_binding() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = BindAddress {
        addr: taken.local_addr().unwrap(),
        origin: BindOrigin::Flag,
    };
    let err = bind(&address).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("already in use"), "{text}");
    assert!(text.contains(&address.addr.port().to_string()), "{text}");
}

#[test]
fn bind_failures_say_what_to_do() {
    let failure = |kind| BindError::Bind {
        addr: "10.1.2.3:80".parse().unwrap(),
        kind,
        detail: "os error".into(),
    };
    let in_use = failure(io::ErrorKind::AddrInUse).to_string();
    assert!(in_use.contains("port 80 is already in use"), "{in_use}");
    let denied = failure(io::ErrorKind::PermissionDenied).to_string();
    assert!(denied.contains("ports below 1024"), "{denied}");
    let foreign = failure(io::ErrorKind::AddrNotAvailable).to_string();
    assert!(
        foreign.contains("10.1.2.3 is not an address of this machine"),
        "{foreign}"
    );
    let other = failure(io::ErrorKind::Other).to_string();
    assert!(other.ends_with("os error"), "{other}");
}

#[test]
fn origins_are_named_for_the_log() {
    assert_eq!(BindOrigin::Flag.to_string(), "--metrics-bind");
    assert_eq!(BindOrigin::ServiceUrl.to_string(), "JUPYTERHUB_SERVICE_URL");
    assert!(BindOrigin::ServiceUrlName("culler".into())
        .to_string()
        .contains("all interfaces"));
}
