//! Key material by type structure: whether a `--keep` value's type, or any
//! type reachable from it through struct fields, pointers, array, slice and
//! channel elements and map keys and values, is one that holds private keys
//! or TLS secrets by design.
//!
//! Why by structure and not by the declared type's name: a `main.Server`
//! with a `TLSConfig *tls.Config` field carries the certificates' private
//! keys and the session ticket keys under an innocent name. The walk is over
//! DWARF types, so it needs no memory and sees every field, set or not.
//!
//! Limits: an interface is opaque to a type walk (a `crypto.PrivateKey`
//! field is an `any`). The interfaces made to hold keys (`crypto.PrivateKey`,
//! `crypto.Signer`, `crypto.Decrypter`) are refused by name, and `--keep-deep`
//! also checks the dynamic type of every value it loads
//! ([`value_key_material`]).
//!
//! Invariants: the walk visits each type once and at most
//! [`MAX_KEY_WALK_TYPES`] of them; a walk cut short counts as key material
//! found ([`Finding::TooManyTypes`]), since absence was not shown. Paths
//! name fields as Go selects them (`.TLSConfig`, through pointers
//! implicitly), elements as `[i]`, map values as `[k]`, map keys as `{k}`
//! and channel elements as `<-`.

use std::collections::HashSet;

use crate::dwarf::{DwarfInfo, TypeId, TypeKind};
use crate::value::{Pointee, Value, ValueKind};

/// Most types one walk visits; real programs reach a few thousand from a
/// server struct.
pub const MAX_KEY_WALK_TYPES: usize = 200_000;

/// Most values [`value_key_material`] inspects (`--keep-deep` loads at most
/// [`super::keep::MAX_KEEP_DEEP_VALUES`]; this only bounds the walk).
pub const MAX_KEY_WALK_VALUES: usize = 4 << 20;

/// Types refused by their exact name (beyond the package rules of
/// [`is_key_type`]): the interfaces meant to hold private keys and the
/// structs crypto/x509 parses private keys into.
const KEY_TYPES: [&str; 6] = [
    "crypto.PrivateKey",
    "crypto.Signer",
    "crypto.Decrypter",
    "crypto/x509.pkcs1PrivateKey",
    "crypto/x509.pkcs8",
    "crypto/x509.ecPrivateKey",
];

/// Packages every type of which holds key material: TLS state (configs
/// with certificates and ticket keys, connections with traffic secrets),
/// expanded AES keys and HMAC state.
const KEY_PACKAGES: [&str; 5] = [
    "crypto/tls",
    "crypto/aes",
    "crypto/hmac",
    "crypto/internal/fips140/aes",
    "crypto/internal/fips140/hmac",
];

/// Words that make a type of a `crypto/...` or `golang.org/x/crypto/...`
/// package key material (compared in lower case): `PrivateKey` (rsa,
/// ecdsa, ed25519, ecdh and their fips140 forms), ML-KEM decapsulation
/// keys, and secrets.
const KEY_WORDS: [&str; 3] = ["privatekey", "decapsulationkey", "secret"];

/// The word that makes a type of any package key material: a program's own
/// `PrivateKey` type is as secret as the standard library's.
const ANY_PACKAGE_KEY_WORD: &str = "privatekey";

/// Whether the named type `name` (as DWARF spells it: `crypto/tls.Config`)
/// holds key material by design. Composite spellings (`*T`, `[]T`,
/// `map[K]V`) are not named types and answer false; the walk reaches their
/// parts.
pub fn is_key_type(name: &str) -> bool {
    if name.is_empty()
        || name.starts_with(['*', '[', '<'])
        || ["map[", "chan ", "func(", "struct {", "interface {"]
            .iter()
            .any(|p| name.starts_with(p))
    {
        return false;
    }
    if KEY_TYPES.contains(&name) {
        return true;
    }
    // A generic instance `pkg.T[args]`: the package and name are before `[`.
    let head = name.split('[').next().unwrap_or(name);
    let slash = head.rfind('/').map_or(0, |i| i + 1);
    let Some(dot) = head[slash..].find('.').map(|i| i + slash) else {
        return false;
    };
    let (pkg, base) = (&head[..dot], &head[dot + 1..]);
    if KEY_PACKAGES.contains(&pkg) {
        return true;
    }
    let crypto = pkg.starts_with("crypto/") || pkg.starts_with("golang.org/x/crypto/");
    let base = base.to_ascii_lowercase();
    base.contains(ANY_PACKAGE_KEY_WORD) || (crypto && KEY_WORDS.iter().any(|w| base.contains(w)))
}

/// What [`type_key_material`] or [`value_key_material`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Key material at `path` (`main.srv.TLSConfig`), of type `ty`.
    Key {
        /// Where, from the kept expression.
        path: String,
        /// The key-holding type.
        ty: String,
    },
    /// The walk stopped at its bound before seeing every type.
    TooManyTypes {
        /// The bound.
        limit: usize,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Key { path, ty } => write!(f, "{path} -> {ty}"),
            Finding::TooManyTypes { limit } => write!(
                f,
                "it reaches more than {limit} types, too many to show it holds no key material"
            ),
        }
    }
}

/// The first key-holding type reachable from `root` (breadth first, so the
/// shortest path), with its path from `root_path`; `None` when there is
/// none.
pub fn type_key_material(dwarf: &DwarfInfo, root: TypeId, root_path: &str) -> Option<Finding> {
    // (type, parent node, step from the parent)
    let mut nodes: Vec<(TypeId, usize, String)> = vec![(root, usize::MAX, String::new())];
    let mut seen: HashSet<TypeId> = HashSet::from([root]);
    let mut next = 0usize;
    while next < nodes.len() {
        let (id, _, _) = &nodes[next];
        let id = *id;
        let Some(t) = dwarf.ty(id) else {
            next += 1;
            continue;
        };
        if is_key_type(&t.name) {
            return Some(Finding::Key {
                path: path_of(&nodes, next, root_path),
                ty: t.name.clone(),
            });
        }
        let mut edges: Vec<(TypeId, String)> = Vec::new();
        match &t.kind {
            TypeKind::Pointer { elem: Some(e) } => edges.push((*e, String::new())),
            TypeKind::Typedef(e) => edges.push((*e, String::new())),
            TypeKind::Array { elem, .. } | TypeKind::Slice { elem } => {
                edges.push((*elem, "[i]".into()))
            }
            TypeKind::Chan { elem, .. } => edges.push((*elem, "<-".into())),
            TypeKind::Map { key, elem, .. } => {
                edges.push((*key, "{k}".into()));
                edges.push((*elem, "[k]".into()));
            }
            TypeKind::Struct { fields } => {
                for f in fields {
                    edges.push((f.ty, format!(".{}", f.name)));
                }
            }
            _ => {}
        }
        for (e, step) in edges {
            if seen.insert(e) {
                if nodes.len() >= MAX_KEY_WALK_TYPES {
                    return Some(Finding::TooManyTypes {
                        limit: MAX_KEY_WALK_TYPES,
                    });
                }
                nodes.push((e, next, step));
            }
        }
        next += 1;
    }
    None
}

fn path_of(nodes: &[(TypeId, usize, String)], mut i: usize, root_path: &str) -> String {
    let mut steps = Vec::new();
    while i != usize::MAX {
        steps.push(nodes[i].2.as_str());
        i = nodes[i].1;
    }
    steps.reverse();
    format!("{root_path}{}", steps.concat())
}

/// The first loaded value (depth first) whose type, as loaded, is a key
/// type: catches what interfaces hold, which [`type_key_material`] cannot
/// see. Values beyond [`MAX_KEY_WALK_VALUES`] count as key material.
pub fn value_key_material(root: &Value, root_path: &str) -> Option<Finding> {
    let mut stack: Vec<(&Value, String)> = vec![(root, root_path.to_string())];
    let mut seen = 0usize;
    while let Some((v, path)) = stack.pop() {
        seen += 1;
        if seen > MAX_KEY_WALK_VALUES {
            return Some(Finding::TooManyTypes {
                limit: MAX_KEY_WALK_VALUES,
            });
        }
        if is_key_type(&v.type_name) {
            return Some(Finding::Key {
                path,
                ty: v.type_name.clone(),
            });
        }
        match &v.kind {
            ValueKind::Pointer {
                pointee: Pointee::Loaded(p),
                ..
            } => stack.push((p, path)),
            ValueKind::Array { elems, .. } | ValueKind::Slice { elems, .. } => {
                for (i, e) in elems.iter().enumerate() {
                    stack.push((e, format!("{path}[{i}]")));
                }
            }
            ValueKind::Chan { buffer, .. } => {
                for e in buffer {
                    stack.push((e, format!("{path}<-")));
                }
            }
            ValueKind::Struct { fields, .. } => {
                for (name, f) in fields {
                    stack.push((f, format!("{path}.{name}")));
                }
            }
            ValueKind::Map { entries, .. } => {
                for (k, e) in entries {
                    stack.push((k, format!("{path}{{k}}")));
                    stack.push((e, format!("{path}[k]")));
                }
            }
            ValueKind::Interface { value: Some(d), .. } => stack.push((d, path)),
            ValueKind::Func { captured, .. } => {
                for (name, c) in captured {
                    stack.push((c, format!("{path}.{name}")));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::testprog;

    /// Builds `corpus/cmd/secrets` with the system Go and loads its DWARF.
    fn secrets_dwarf(dir: &std::path::Path) -> DwarfInfo {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        let out = dir.join("secrets");
        let status = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("./cmd/secrets")
            .current_dir(&corpus)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .status()
            .expect("run go build (is Go installed?)");
        assert!(status.success(), "go build ./cmd/secrets failed");
        testprog::load(&out)
    }

    #[test]
    fn key_material_is_found_through_fields_pointers_and_elements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dwarf = secrets_dwarf(dir.path());
        let find = |name: &str| {
            let g = dwarf.global(name).unwrap_or_else(|| panic!("no {name}"));
            type_key_material(&dwarf, g.ty, name)
        };
        let key = |path: &str, ty: &str| {
            Some(Finding::Key {
                path: path.into(),
                ty: ty.into(),
            })
        };
        assert_eq!(
            find("main.srv"),
            key("main.srv.TLSConfig", "crypto/tls.Config")
        );
        assert_eq!(
            find("main.vault"),
            key("main.vault.Holders[i].Priv", "crypto/ecdsa.PrivateKey")
        );
        assert_eq!(find("main.signer"), key("main.signer", "crypto.Signer"));
        assert_eq!(
            find("main.srv").map(|f| f.to_string()).as_deref(),
            Some("main.srv.TLSConfig -> crypto/tls.Config")
        );
        // Ordinary data, and an interface whose dynamic value (a key) a
        // type walk cannot see.
        for name in ["main.cfg", "main.cache", "main.many", "main.anyKey"] {
            assert_eq!(find(name), None, "{name}");
        }
    }

    #[test]
    fn key_types_by_name_and_package() {
        for t in [
            "crypto/tls.Config",
            "crypto/tls.Certificate",
            "crypto/tls.Conn",
            "crypto/rsa.PrivateKey",
            "crypto/ecdsa.PrivateKey",
            "crypto/ed25519.PrivateKey",
            "crypto/ecdh.PrivateKey",
            "crypto/internal/fips140/ecdh.PrivateKey",
            "crypto/mlkem.DecapsulationKey768",
            "crypto/x509.pkcs1PrivateKey",
            "crypto.PrivateKey",
            "crypto.Signer",
            "golang.org/x/crypto/ssh.rsaPrivateKey",
            "crypto/internal/fips140/aes.Block",
            "main.PrivateKey",
        ] {
            assert!(is_key_type(t), "{t}");
        }
        for t in [
            "int",
            "[]uint8",
            "*crypto/tls.Config",
            "[]crypto/ed25519.PrivateKey",
            "map[string]crypto/rsa.PrivateKey",
            "main.Config",
            "main.SecretName",
            "crypto/ecdsa.PublicKey",
            "crypto/x509.Certificate",
            "crypto.Hash",
            "net/http.Server",
        ] {
            assert!(!is_key_type(t), "{t}");
        }
    }
}
