//! qlog files from the binary: `quiver get` with `QLOGDIR` against
//! `quiver serve --qlog-dir`, each writing `{odcid}_{role}.sqlog` as JSON
//! text sequences (RFC 7464) that qvis loads.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use common::*;
use serde_json::Value;

/// The records of a JSON-SEQ file: each starts with RS (0x1E) and must
/// parse as JSON on its own.
fn records(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        bytes.first(),
        Some(&0x1e),
        "{}: starts with RS",
        path.display()
    );
    bytes
        .split(|&b| b == 0x1e)
        .skip(1)
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'), "record ends with LF");
            serde_json::from_slice(r).unwrap_or_else(|e| {
                panic!("{}: {e}: {}", path.display(), String::from_utf8_lossy(r))
            })
        })
        .collect()
}

fn sqlog_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Checks one file: the header, then events in time order with the names
/// qvis reads; returns the event names.
fn check(path: &Path, role: &str) -> Vec<String> {
    let recs = records(path);
    let header = &recs[0];
    assert_eq!(header["qlog_version"], "0.3", "{header}");
    assert_eq!(header["qlog_format"], "JSON-SEQ", "{header}");
    assert_eq!(header["trace"]["vantage_point"]["type"], role, "{header}");
    let odcid = path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_suffix(&format!("_{role}.sqlog"))
        .expect("named {odcid}_{role}.sqlog");
    assert_eq!(header["trace"]["common_fields"]["ODCID"], odcid);
    let mut last = 0.0;
    let mut names = Vec::new();
    for e in &recs[1..] {
        let time = e["time"].as_f64().unwrap_or_else(|| panic!("time: {e}"));
        assert!(time >= last, "time order: {e}");
        last = time;
        assert!(e["data"].is_object(), "{e}");
        names.push(e["name"].as_str().unwrap().to_owned());
    }
    for name in [
        "transport:version_information",
        "transport:parameters_set",
        "transport:packet_sent",
        "transport:packet_received",
        "recovery:metrics_updated",
        "security:key_updated",
        "connectivity:connection_state_updated",
        "connectivity:connection_closed",
        "transport:datagrams_received",
        "transport:datagrams_sent",
        "transport:stream_state_updated",
    ] {
        assert!(names.iter().any(|n| n == name), "{role}: no {name}");
    }
    check_datagrams(&recs, role);
    check_streams(&recs, role);
    // Both sides' transport parameters.
    for owner in ["local", "remote"] {
        assert!(
            recs.iter()
                .any(|e| e["name"] == "transport:parameters_set" && e["data"]["owner"] == owner),
            "{role}: parameters_set {owner}"
        );
    }
    // Packets carry header and frames.
    let stream_frames = recs
        .iter()
        .filter(|e| {
            e["name"] == "transport:packet_sent" || e["name"] == "transport:packet_received"
        })
        .flat_map(|e| e["data"]["frames"].as_array().unwrap().clone())
        .filter(|f| f["frame_type"] == "stream")
        .count();
    assert!(stream_frames > 0, "{role}: no STREAM frames");
    names
}

/// transport:datagrams_received / datagrams_sent: a count and one RawInfo
/// per datagram (draft-ietf-quic-qlog-quic-events-03); one datagram per
/// receive, a GSO batch per transmit.
fn check_datagrams(recs: &[Value], role: &str) {
    for name in ["transport:datagrams_received", "transport:datagrams_sent"] {
        for e in recs.iter().filter(|e| e["name"] == name) {
            let d = &e["data"];
            let count = d["count"].as_u64().unwrap_or_else(|| panic!("{role}: {e}"));
            let raw = d["raw"].as_array().unwrap_or_else(|| panic!("{role}: {e}"));
            assert_eq!(raw.len() as u64, count, "{role}: {e}");
            assert!(count >= 1, "{role}: {e}");
            if name == "transport:datagrams_received" {
                assert_eq!(count, 1, "{role}: {e}");
            }
            for r in raw {
                let len = r["length"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{role}: {e}"));
                assert!((1..=65_527).contains(&len), "{role}: {e}");
            }
        }
    }
}

/// transport:stream_state_updated: the request stream is opened (by the
/// client), its FIN sent by both ends (RFC 9000 §3.1 "Data Sent") and
/// read to the end (§3.2 "Data Read"); every record names its stream and
/// a state of the draft.
fn check_streams(recs: &[Value], role: &str) {
    const STATES: [&str; 12] = [
        "open",
        "closed",
        "ready",
        "send",
        "data_sent",
        "reset_sent",
        "receive",
        "size_known",
        "data_received",
        "data_read",
        "reset_received",
        "reset_read",
    ];
    let updates: Vec<&Value> = recs
        .iter()
        .filter(|e| e["name"] == "transport:stream_state_updated")
        .map(|e| &e["data"])
        .collect();
    for d in &updates {
        assert!(d["stream_id"].is_u64(), "{role}: {d}");
        assert!(
            ["bidirectional", "unidirectional"].contains(&d["stream_type"].as_str().unwrap_or("")),
            "{role}: {d}"
        );
        assert!(
            STATES.contains(&d["new"].as_str().unwrap_or("")),
            "{role}: {d}"
        );
    }
    let has = |side: Option<&str>, new: &str| {
        updates
            .iter()
            .any(|d| d["new"] == new && side.is_none_or(|s| d["stream_side"] == s))
    };
    let opener = if role == "client" { "local" } else { "remote" };
    assert!(
        updates
            .iter()
            .any(|d| d["new"] == "open" && d["trigger"] == opener && d["stream_id"] == 0),
        "{role}: stream 0 not opened by the {opener} end"
    );
    assert!(has(Some("sending"), "data_sent"), "{role}: no FIN sent");
    assert!(
        has(Some("receiving"), "data_read"),
        "{role}: no stream read to its end"
    );
}

#[test]
fn get_and_serve_write_qlog_files_that_parse() {
    let root = TempDir::new("qlog-root");
    let out = TempDir::new("qlog-out");
    let client_dir = out.path().join("client");
    let server_dir = out.path().join("server");
    std::fs::write(root.path().join("f"), content(300_000, 7)).unwrap();
    let server = serve(root.path(), &["--qlog-dir", server_dir.to_str().unwrap()]);
    let files = out.path().join("files");
    let u = url(server.port, "f");
    let args = ["get", "--insecure", "--out", files.to_str().unwrap(), &u];
    let (result, _) = run_with(&args, &[("QLOGDIR", &client_dir)], DEADLINE);
    assert!(result.status.success(), "{}", stderr(&result));

    let client = sqlog_files(&client_dir);
    assert_eq!(client.len(), 1, "{client:?}");
    check(&client[0], "client");

    // The server writes its close when the client's CONNECTION_CLOSE
    // arrives; its process keeps running, so wait for the record.
    let deadline = Instant::now() + Duration::from_secs(10);
    let server_file = loop {
        let files = sqlog_files(&server_dir);
        if let [f] = files.as_slice() {
            let text = std::fs::read(f).unwrap();
            if text
                .windows(30)
                .any(|w| w == b"connectivity:connection_closed")
            {
                break f.clone();
            }
        }
        assert!(Instant::now() < deadline, "no server qlog: {files:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    check(&server_file, "server");
    // Both files are named by the same original DCID.
    let odcid = |p: &Path| {
        p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(odcid(&client[0]), odcid(&server_file));
    drop(server);
}

#[test]
fn no_qlog_without_the_flag_or_variable() {
    let root = TempDir::new("noqlog-root");
    let out = TempDir::new("noqlog-out");
    std::fs::write(root.path().join("f"), content(1000, 1)).unwrap();
    let server = serve(root.path(), &[]);
    let files = out.path().join("files");
    let u = url(server.port, "f");
    let args = ["get", "--insecure", "--out", files.to_str().unwrap(), &u];
    let (result, _) = run_with(&args, &[], DEADLINE);
    assert!(result.status.success(), "{}", stderr(&result));
    let produced: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(produced, ["files"]);
}

/// The disable_active_migration transport parameter the client received
/// from `quiver serve` with `extra` flags, read from the client's qlog.
fn server_disables_migration(extra: &[&str]) -> bool {
    let root = TempDir::new("dam-root");
    let out = TempDir::new("dam-out");
    let client_dir = out.path().join("client");
    std::fs::write(root.path().join("f"), content(1000, 3)).unwrap();
    let server = serve(root.path(), extra);
    let files = out.path().join("files");
    let u = url(server.port, "f");
    let args = ["get", "--insecure", "--out", files.to_str().unwrap(), &u];
    let (result, _) = run_with(&args, &[("QLOGDIR", &client_dir)], DEADLINE);
    assert!(result.status.success(), "{}", stderr(&result));
    drop(server);
    let client = sqlog_files(&client_dir);
    assert_eq!(client.len(), 1, "{client:?}");
    let recs = records(&client[0]);
    let remote = recs
        .iter()
        .find(|e| e["name"] == "transport:parameters_set" && e["data"]["owner"] == "remote")
        .expect("the server's transport parameters");
    remote["data"]["disable_active_migration"]
        .as_bool()
        .unwrap_or_else(|| panic!("no disable_active_migration: {remote}"))
}

/// `quiver serve --disable-active-migration` sends the transport
/// parameter (RFC 9000 §18.2); without the flag it is absent.
#[test]
fn serve_disable_active_migration_sends_the_parameter() {
    assert!(server_disables_migration(&["--disable-active-migration"]));
    assert!(!server_disables_migration(&[]));
}
