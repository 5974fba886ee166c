//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: it answers every GET with one body,
//! whole or cut short, and counts the requests. Never any other address.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the server sends after the headers.
#[derive(Clone, Copy)]
pub enum Reply {
    /// The whole body with its Content-Length.
    Whole,
    /// Content-Length of the whole body, then only its first half, then the connection closes.
    CutInHalf,
}

pub struct Server {
    pub port: u16,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// Serves `body` to every request until the test program ends.
    pub fn start(body: Vec<u8>, reply: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = answer(stream, &body, reply);
            }
        });
        Server { port, requests }
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/models/{file}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(stream: TcpStream, body: &[u8], reply: Reply) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    let sent = match reply {
        Reply::Whole => body,
        Reply::CutInHalf => &body[..body.len() / 2],
    };
    stream.write_all(sent)?;
    stream.flush()
}

/// A URL on 127.0.0.1 where nothing listens: connecting is refused at once.
pub fn refused_url(file: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/models/{file}")
}
