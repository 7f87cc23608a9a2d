//! The web explorer served by `hollow explore`: its pages over HTTP, that it refuses to write,
//! escapes what records hold, and follows new announcements; and (ignored unless run by
//! `.ci/browser-job`, which installs Chromium) the same pages in a real headless browser.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{dataset, hollow, movie, versions};

/// A running explorer, stopped when dropped.
struct Explorer {
    child: Child,
    addr: String,
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hollow explore STORE` on a free loopback port.
fn explore(store: &str) -> Explorer {
    let mut child = hollow()
        .args(["explore", store, "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("reads");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Explorer { child, addr }
}

/// One HTTP/1.1 request: (status, head, body).
fn request(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_string(), body.to_string())
}

fn get(addr: &str, path: &str) -> (u16, String, String) {
    request(addr, "GET", path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_types_records_and_diffs() {
    let d = dataset().await;
    let x = explore(&d.arg());
    let (status, head, body) = get(&x.addr, "/");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        body.contains("Version <b>3</b>") && body.contains("href=\"/types/Movie\""),
        "{body}"
    );
    // Browse, search and look up by key.
    let (status, _, body) = get(&x.addr, "/types/Movie");
    assert_eq!(status, 200);
    assert!(
        body.contains("4 records, page 1 of 1") && body.contains("Heat"),
        "{body}"
    );
    let (_, _, body) = get(&x.addr, "/types/Movie?q=studio.name%3DToho");
    assert!(
        body.contains("1 records where studio.name = Toho") && body.contains("Ran"),
        "{body}"
    );
    let (status, head, _) = get(&x.addr, "/types/Movie/key?k=2");
    assert_eq!(status, 303);
    let location = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .starts_with("location: ")
                .then(|| l[10..].to_string())
        })
        .expect("location")
        .trim()
        .to_string();
    let (status, _, body) = get(&x.addr, &location);
    assert_eq!(status, 200);
    assert!(
        body.contains("Ran") && body.contains("1986") && body.contains("key id=2"),
        "{body}"
    );
    // References are links to the records they lead to.
    assert!(body.contains("href=\"/types/Studio/"), "{body}");
    // An older version, and a diff.
    let (status, head, _) = get(&x.addr, "/types/Movie/key?k=3&v=1");
    assert_eq!(status, 303);
    assert!(head.contains("?v=1"), "{head}");
    let (status, _, body) = get(&x.addr, "/diff?from=1&to=2");
    assert_eq!(status, 200);
    assert!(
        body.contains("year: 1985 → 1986") && body.contains("id=5") && body.contains("id=3"),
        "{body}"
    );
    let (status, _, _) = get(&x.addr, "/types/Movie/key?k=99");
    assert_eq!(status, 404);
    let (status, _, _) = get(&x.addr, "/types/Nothing");
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_refuses_to_write_and_escapes_what_records_hold() {
    let d = dataset().await;
    let x = explore(&d.arg());
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/", "/types/Movie", "/types/Movie/0", "/diff?from=1&to=2"] {
            let (status, _, _) = request(&x.addr, method, path);
            assert_eq!(status, 405, "{method} {path}");
        }
    }
    let (status, _, body) = get(&x.addr, "/types/Movie/key?k=4");
    assert_eq!(status, 303, "{body}");
    for path in ["/types/Movie", "/types/Movie?q=year%3D2000"] {
        let (_, _, body) = get(&x.addr, path);
        assert!(
            !body.contains("<script") && !body.contains("<img"),
            "{path}: {body}"
        );
        assert!(
            body.contains(
                "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
            ),
            "{body}"
        );
    }
    let ordinal_page = (0..8)
        .map(|o| get(&x.addr, &format!("/types/Movie/{o}")).2)
        .find(|b| b.contains("onerror"))
        .expect("the hostile record's page");
    assert!(
        !ordinal_page.contains("<script") && !ordinal_page.contains("<img"),
        "{ordinal_page}"
    );
    let (_, _, studio) = get(&x.addr, "/types/Studio?q=name%3DA%26B%20%22Films%22");
    assert!(studio.contains("A&amp;B &quot;Films&quot;"), "{studio}");
    // What a user types into a search is escaped too.
    let (_, _, body) = get(&x.addr, "/types/Movie?q=title%3D%3Cu%3E");
    assert!(
        !body.contains("<u>") && body.contains("&lt;u&gt;"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_follows_new_announcements() {
    let mut d = dataset().await;
    let x = explore(&d.arg());
    assert!(get(&x.addr, "/").2.contains("Version <b>3</b>"));
    let mut v4 = versions()[2].clone();
    v4.push(movie(6, "Alien", 1979, "Fox"));
    d.publish(&v4).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(&x.addr, "/").2.contains("Version <b>4</b>") {
        assert!(
            Instant::now() < deadline,
            "the explorer did not follow version 4"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = get(&x.addr, "/types/Movie/key?k=6");
    assert_eq!(status, 303);
}

/// The pages as a real browser renders them (Chromium, headless): `HOLLOW_CHROMIUM` names
/// the binary; `.ci/browser-job` installs it and runs this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run by .ci/browser-job"]
async fn a_browser_looks_a_record_up_and_sees_the_diff() {
    let chromium =
        std::env::var("HOLLOW_CHROMIUM").expect("HOLLOW_CHROMIUM names a Chromium binary");
    let d = dataset().await;
    let x = explore(&d.arg());
    let profile = tempfile::tempdir().unwrap();
    let dom = |path: &str| -> String {
        let out = std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.path().display()),
                "--dump-dom",
                &format!("http://{}{path}", x.addr),
            ])
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let overview = dom("/");
    assert!(
        overview.contains("<h1>Overview</h1>") && overview.contains("Movie"),
        "{overview}"
    );
    // The lookup form's request, redirect followed by the browser.
    let record = dom("/types/Movie/key?k=2");
    assert!(
        record.contains("<h1>Movie #") && record.contains("Ran") && record.contains("1986"),
        "{record}"
    );
    let diff = dom("/diff?from=1&to=2");
    assert!(diff.contains("year: 1985 → 1986"), "{diff}");
    // The hostile record renders as text: no element came out of its title.
    let listing = dom("/types/Movie");
    assert!(
        listing.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img"),
        "{listing}"
    );
    assert!(
        !listing.contains("<img") && !listing.contains("<script"),
        "{listing}"
    );
}
