//! `googlenet serve`'s API key, CORS and shutdown: inference needs the key when one is set
//! (health does not), cross-origin access only for the one --cors origin, and on SIGTERM the
//! request in flight is answered, new connections are refused, and the process exits cleanly.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::fresh_dir;
use crate::serve_harness::{PartialRequest, Server, read, reference_images};

#[test]
fn serve_requires_the_api_key_on_inference_routes_only() {
    let dir = fresh_dir("serve-key");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key"), "s3cret-token\n").unwrap();
    let key_file = dir.join("key");
    let server = Server::start(&["--api-key-file", key_file.to_str().unwrap()]);
    let ant = read(&reference_images()[2]);

    let missing = server.post("/v1/classify", "image/png", &ant);
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert_eq!(missing.error_code(), "unauthorized");
    assert!(missing.error_message().contains("Authorization: Bearer"));
    assert_eq!(missing.www_authenticate.as_deref(), Some("Bearer"));
    let wrong = server.post_with(
        "/v1/classify",
        &[
            ("Content-Type", "image/png"),
            ("Authorization", "Bearer s3cret-tokem"),
        ],
        &ant,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(server.get("/v1/model").status, 401);

    let right = server.post_with(
        "/v1/classify",
        &[
            ("Content-Type", "image/png"),
            ("Authorization", "Bearer s3cret-token"),
        ],
        &ant,
    );
    assert_eq!(right.status, 200, "{}", right.text);
    let model = server.get_with("/v1/model", &[("Authorization", "Bearer s3cret-token")]);
    assert_eq!(model.json()["variant"], "torchvision");
    for open in ["/healthz", "/readyz", "/metrics", "/"] {
        assert_eq!(server.get(open).status, 200, "{open} needs no key");
    }
}

#[test]
fn serve_allows_cross_origin_calls_only_from_the_cors_origin() {
    let origin = "https://photos.example.org";
    let with_cors = Server::start(&["--cors", origin]);
    let headers = [("Origin", origin)];
    let reply = with_cors.get_with("/healthz", &headers);
    assert_eq!(reply.status, 200);
    let allowed = ureq::get(with_cors.url("/v1/model"))
        .header("Origin", origin)
        .call()
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap(),
        origin
    );
    let other = ureq::get(with_cors.url("/v1/model"))
        .header("Origin", "https://elsewhere.example.com")
        .call()
        .unwrap();
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "no CORS header for another origin"
    );
    drop(with_cors);

    let without = Server::start(&[]);
    let reply = ureq::get(without.url("/v1/model"))
        .header("Origin", origin)
        .call()
        .unwrap();
    assert!(
        !reply.headers().contains_key("access-control-allow-origin"),
        "no CORS without --cors"
    );
}

#[test]
fn serve_answers_the_request_in_flight_on_sigterm_then_exits() {
    let mut server = Server::start(&[]);
    let ant = read(&reference_images()[2]);
    let in_flight = PartialRequest::start(
        &server.addr,
        "/v1/classify?top=1",
        &[("Content-Type", "image/png")],
        &ant,
        ant.len() / 2,
    );
    server.wait_queue_depth(1.0);
    let addr = server.addr.clone();
    let pid = server.pid() as libc::pid_t;
    // SAFETY: kill(2) on the id of the server child this test started and still holds.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    // New connections are refused once the listener has closed.
    let start = Instant::now();
    while TcpStream::connect(&addr).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered = in_flight.finish();
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json()["top"].as_array().unwrap().len(), 1);
    let status = server.wait();
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.stderr()
    );
}

#[test]
fn serve_exits_with_the_reason_on_bad_options_or_unloadable_weights() {
    let serve = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = serve(&["--weights", "w.pth", "--max-body", "12XB"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown size unit \"xb\""));

    // The port opens first (health answers while loading), then the load fails: exit 1, and the
    // reason names the file.
    let out = serve(&["--weights", "/no/such/weights.pth"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("listening on http://127.0.0.1:"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loading the model") && stderr.contains("/no/such/weights.pth"),
        "{stderr}"
    );
}
