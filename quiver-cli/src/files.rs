//! Which file a request path names under the served root, shared by the
//! HTTP/0.9 and HTTP/3 servers: `%XX` escapes decoded per segment, `..`
//! refused, and the canonical path kept under the canonical root (so
//! symbolic links cannot leave it).

use std::path::{Path, PathBuf};

/// `%XX` escapes decoded (RFC 3986 §2.1); `None` for a malformed escape.
fn percent_decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file `path` names under `root`, if it is a regular file there, or
/// the `index.html` of the directory it names (as `/` in a browser);
/// `..` and symbolic links out of the root are refused.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let path = path.split(['?', '#']).next()?;
    let mut file = root.to_path_buf();
    for part in path.split('/') {
        // Decoded per segment, so an escaped '/' cannot add one.
        let part = percent_decode(part)?;
        match part.as_str() {
            "" | "." => {}
            ".." => return None,
            p if p.contains(['/', '\\', '\0']) => return None,
            p => file.push(p),
        }
    }
    let mut file = file.canonicalize().ok()?;
    if file.is_dir() {
        file = file.join("index.html").canonicalize().ok()?;
    }
    (file.starts_with(root) && file.is_file()).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("quiver-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), b"x").unwrap();
        let root = dir.join("sub").canonicalize().unwrap();
        std::fs::write(dir.join("secret"), b"x").unwrap();
        assert_eq!(resolve(&root, "/f"), Some(root.join("f")));
        assert_eq!(resolve(&root, "//./f?x=1"), Some(root.join("f")));
        assert_eq!(resolve(&root, "/../secret"), None);
        std::fs::write(root.join("a b"), b"x").unwrap();
        assert_eq!(resolve(&root, "/a%20b"), Some(root.join("a b")));
        assert_eq!(resolve(&root, "/%2e%2e/secret"), None);
        assert_eq!(resolve(&root, "/..%2fsecret"), None);
        assert_eq!(resolve(&root, "/f%"), None);
        assert_eq!(resolve(&root, "/f%zz"), None);
        assert_eq!(resolve(&root, "/"), None);
        assert_eq!(resolve(&root, "/missing"), None);
        std::fs::write(root.join("index.html"), b"x").unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, ""), Some(root.join("index.html")));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret"), root.join("link")).unwrap();
            assert_eq!(resolve(&root, "/link"), None);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
