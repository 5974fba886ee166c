//! The real `googlenet serve` binary on a loopback port (127.0.0.1, a free port chosen by the
//! system), and small HTTP helpers: `ureq` for whole requests, a raw socket for requests sent
//! in parts (to hold one in flight).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{TORCHVISION_PTH, shared};

/// The reference images PyTorch's reference outputs were made from.
pub fn reference_images() -> Vec<PathBuf> {
    [
        "0_sklearn_china.png",
        "1_sklearn_flower.png",
        "2_hymenoptera_val_ant.png",
        "3_hymenoptera_val_bee.png",
    ]
    .iter()
    .map(|name| shared(&format!("reference/inputs/{name}")))
    .collect()
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    agent: ureq::Agent,
    stderr: Arc<Mutex<String>>,
    _stdout: BufReader<ChildStdout>,
}

/// A reply: status, `Retry-After` and `WWW-Authenticate` if present, and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `error.code` of a JSON error reply, after checking it repeats the status.
    pub fn error_code(&self) -> String {
        let json = self.json();
        assert_eq!(json["error"]["status"], self.status, "{}", self.text);
        json["error"]["code"]
            .as_str()
            .expect("error.code")
            .to_string()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .expect("error.message")
            .to_string()
    }
}

impl Server {
    /// `googlenet serve` on the reference torchvision weights with `extra` options, once
    /// `/readyz` answers 200.
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_googlenet"))
            .args([
                "serve",
                "--variant",
                "torchvision",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--weights")
            .arg(shared(TORCHVISION_PTH))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the googlenet binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A fresh connection per request: the server closes idle ones (--header-timeout).
            .max_idle_connections(0)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let server = Server {
            child,
            addr,
            agent,
            stderr,
            _stdout: stdout,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if self.get("/readyz").status == 200 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "not ready after 120 s; stderr: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.call().expect("GET answered"))
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.post_with(path, &[("Content-Type", content_type)], body)
    }

    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.send(body).expect("POST answered"))
    }

    /// A multipart form with each `(field, file name, bytes)` as a part.
    pub fn post_form(&self, path: &str, parts: &[(&str, &str, &[u8])]) -> Reply {
        let (content_type, body) = multipart(parts);
        self.post(path, &content_type, &body)
    }

    /// The value of one unlabelled metric in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until `googlenet_queue_depth` is `depth` (a request admitted and held).
    pub fn wait_queue_depth(&self, depth: f64) {
        let start = Instant::now();
        while self.metric("googlenet_queue_depth") != depth {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "queue depth never {depth}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let status = response.status().as_u16();
    let retry_after = header("retry-after");
    let www_authenticate = header("www-authenticate");
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    Reply {
        status,
        retry_after,
        www_authenticate,
        text,
    }
}

/// `multipart/form-data`: its content type (with the boundary) and body.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "googlenet-test-boundary-7d1f0c";
    let mut body = Vec::new();
    for (field, file, bytes) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A request whose headers and first `sent` body bytes are on their way, the rest held back.
pub struct PartialRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl PartialRequest {
    /// `POST path` with `body` declared in `Content-Length`, of which `sent` bytes are sent now.
    pub fn start(
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sent: usize,
    ) -> PartialRequest {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body[..sent]).unwrap();
        stream.flush().unwrap();
        PartialRequest {
            stream,
            rest: body[sent..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the reply to the end.
    pub fn finish(mut self) -> Reply {
        self.stream.write_all(&self.rest).unwrap();
        self.read_reply()
    }

    /// Reads whatever the server answers without sending more (a timeout's reply).
    pub fn read_reply(mut self) -> Reply {
        let mut raw = Vec::new();
        let _ = self.stream.read_to_end(&mut raw);
        parse_reply(&raw)
    }
}

/// Status, two headers and body of a `Connection: close` HTTP/1.1 reply with a plain body.
pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    Reply {
        status,
        retry_after: header("retry-after"),
        www_authenticate: header("www-authenticate"),
        text: body.to_string(),
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
