//! Bad input to `googlenet serve`: each gets its 4xx status and a JSON error naming the reason,
//! and the service goes on serving; the bounded queue answers 503 with Retry-After; slow
//! clients are cut off.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};

use crate::common::{fresh_dir, write_truncated_jpeg};
use crate::serve_harness::{PartialRequest, Server, multipart, read, reference_images};

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    RgbImage::from_pixel(width, height, Rgb([120, 80, 40]))
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A JPEG whose entropy-coded pixels are most of the file.
fn noisy_jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7919 + y * 104729) % 251;
        Rgb([v as u8, (v * 3 % 256) as u8, (v * 5 % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[test]
fn serve_refuses_each_bad_input_with_its_status_and_reason_and_goes_on() {
    let server = Server::start(&[
        "--max-body",
        "256KiB",
        "--max-image-pixels",
        "1000000",
        "--max-images",
        "2",
    ]);
    let ant = read(&reference_images()[2]);
    let check =
        |what: &str, reply: crate::serve_harness::Reply, status: u16, code: &str, says: &str| {
            assert_eq!(reply.status, status, "{what}: {}", reply.text);
            assert_eq!(reply.error_code(), code, "{what}");
            let message = reply.error_message();
            assert!(
                message.contains(says),
                "{what}: {message:?} does not say {says:?}"
            );
        };

    check(
        "text sent as an image",
        server.post("/v1/classify", "image/jpeg", b"these are not pixels"),
        422,
        "not_an_image",
        "not an image",
    );
    let dir = fresh_dir("serve-truncated");
    std::fs::create_dir_all(&dir).unwrap();
    write_truncated_jpeg(&dir.join("half.jpg"));
    check(
        "a JPEG cut inside its header",
        server.post("/v1/classify", "image/jpeg", &read(&dir.join("half.jpg"))),
        422,
        "invalid_image",
        "truncated",
    );
    let jpeg = noisy_jpeg(320, 240);
    check(
        "a JPEG cut inside its pixels",
        server.post("/v1/classify", "image/jpeg", &jpeg[..jpeg.len() * 2 / 3]),
        422,
        "invalid_image",
        "truncated JPEG",
    );
    check(
        "an image over the pixel budget",
        server.post("/v1/classify", "image/png", &png(1001, 1000)),
        422,
        "too_many_pixels",
        "1001x1000 is 1001000 pixels, over the budget of 1000000",
    );
    check(
        "a thin image that resizing would make huge",
        server.post("/v1/classify", "image/png", &png(4000, 2)),
        422,
        "too_many_pixels",
        "resized to a shorter side of 256",
    );
    check(
        "a body over --max-body",
        PartialRequest::start(
            &server.addr,
            "/v1/classify",
            &[("Content-Type", "image/png")],
            &vec![0u8; 300 << 10],
            0,
        )
        .read_reply(),
        413,
        "body_too_large",
        "262144 bytes",
    );
    check(
        "a text body",
        server.post("/v1/classify", "text/plain", b"hello"),
        415,
        "unsupported_media_type",
        "text/plain",
    );
    check(
        "no content type",
        server.post_with("/v1/classify", &[], b"x"),
        415,
        "unsupported_media_type",
        "no Content-Type",
    );
    check(
        "an unknown route",
        server.get("/v1/nothing"),
        404,
        "not_found",
        "/v1/nothing",
    );
    check(
        "a wrong method",
        server.get("/v1/classify"),
        405,
        "method_not_allowed",
        "GET",
    );
    // Refusals that come before the body is read use small bodies: the server answers and closes
    // without reading the rest, which a client still writing a large body sees as a broken pipe.
    let three: Vec<(&str, &str, &[u8])> = vec![("image", "a.png", b"x"); 3];
    check(
        "too many images",
        server.post_form("/v1/classify", &three),
        413,
        "too_many_images",
        "more than 2 images",
    );
    check(
        "a form field that is not an image",
        server.post_form("/v1/classify", &[("photo", "a.png", b"x")]),
        400,
        "bad_request",
        "\"photo\"",
    );
    let (content_type, empty_form) = multipart(&[]);
    check(
        "a form without images",
        server.post("/v1/classify", &content_type, &empty_form),
        400,
        "bad_request",
        "no \"image\" field",
    );
    check(
        "a bad image in a form",
        server.post_form(
            "/v1/classify",
            &[
                ("image", "good.png", &ant),
                ("image", "notes.png", b"plain text"),
            ],
        ),
        422,
        "not_an_image",
        "image 2: notes.png: not an image",
    );
    check(
        "top=0",
        server.post("/v1/classify?top=0", "image/png", b"x"),
        400,
        "bad_request",
        "top=0",
    );
    check(
        "an unknown query option",
        server.post("/v1/classify?topk=3", "image/png", b"x"),
        400,
        "bad_request",
        "topk",
    );
    check(
        "a crop the network is not built for",
        server.post("/v1/classify?crop=299", "image/png", b"x"),
        400,
        "bad_request",
        "224x224",
    );

    let reply = server.post("/v1/classify?top=3", "image/png", &ant);
    assert_eq!(reply.status, 200, "still serving: {}", reply.text);
    assert_eq!(reply.json()["top"].as_array().unwrap().len(), 3);
}

#[test]
fn serve_answers_503_with_retry_after_when_the_queue_is_full() {
    let server = Server::start(&["--queue", "1"]);
    let ant = read(&reference_images()[2]);
    // A client that has sent its headers holds the one place while its body arrives.
    let held = PartialRequest::start(
        &server.addr,
        "/v1/classify",
        &[("Content-Type", "image/png")],
        &ant,
        ant.len() / 2,
    );
    server.wait_queue_depth(1.0);
    let refused = server.post("/v1/classify", "image/png", b"x");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error_code(), "queue_full");
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(server.get("/healthz").status, 200, "health is not queued");

    let answered = held.finish();
    assert_eq!(answered.status, 200, "{}", answered.text);
    server.wait_queue_depth(0.0);
    assert_eq!(server.post("/v1/classify", "image/png", &ant).status, 200);
}

#[test]
fn serve_cuts_off_clients_that_send_too_slowly() {
    let server = Server::start(&["--header-timeout", "1", "--body-timeout", "1"]);
    let ant = read(&reference_images()[2]);

    // A body that stops arriving: 408 with the reason, and its place in the queue is freed.
    let start = Instant::now();
    let reply = PartialRequest::start(
        &server.addr,
        "/v1/classify",
        &[("Content-Type", "image/png")],
        &ant,
        100,
    )
    .read_reply();
    assert_eq!(reply.status, 408, "{}", reply.text);
    assert_eq!(reply.error_code(), "request_timeout");
    assert!(start.elapsed() < Duration::from_secs(30));
    server.wait_queue_depth(0.0);

    // Headers that never end: the connection is closed without a request.
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(
        read.is_ok() && start.elapsed() < Duration::from_secs(10),
        "closed by the header timeout: {read:?} after {:?}",
        start.elapsed()
    );
    assert_eq!(server.post("/v1/classify", "image/png", &ant).status, 200);
}
