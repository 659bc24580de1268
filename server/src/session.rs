//! UI sessions: session keys (`sk-…`, stored only as a SHA-256 hash, after the time the key was
//! made), the `token` cookie's HS256
//! JWT with LiteLLM's claims, and the master key that signs it.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Secret, Source};

/// The cookie LiteLLM's UI reads.
pub const COOKIE_NAME: &str = "token";

/// Keys that are published in docs and examples; a server signing sessions with one of them
/// would let anyone mint sessions.
const PUBLIC_KEYS: &[&str] = &[
    "sk-1234",
    "sk-12345",
    "sk-123456",
    "sk-1234567890",
    "sk-admin",
    "sk-master",
    "sk-master-key",
    "sk-litellm",
    "sk-test",
    "sk-password",
    "sk-changeme",
    "1234",
    "12345678",
    "password",
    "changeme",
    "admin",
    "secret",
    "master_key",
    "sk-xxxx",
    "sk-xxxxxxxx",
];

/// A master key shorter than this is refused.
const MIN_MASTER_KEY_LEN: usize = 16;

/// Why the master key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// Published or too short.
    #[error(
        "refusing to start: the master key from {0} is a publicly known or too short key (at \
         least {MIN_MASTER_KEY_LEN} characters); set a random one, e.g. sk-$(openssl rand -hex 24)"
    )]
    Weak(&'static str),
    /// Someone other than the server's user (or root) can read or change the generated key's
    /// file.
    #[error(
        "refusing to start: others can read or change the generated master key in {}:{}\n  \
         whoever reads it can act as an admin and sign session tokens: chmod 600 it (and if \
         others may have read it, delete it to have a new key generated, which signs everyone \
         out), or set general_settings.master_key or LITELLM_MASTER_KEY",
        path.display(),
        problems.iter().map(|problem| format!("\n    {problem}")).collect::<String>()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (or the folders above it).
        problems: Vec<String>,
    },
    /// The generated key's file could not be read or written.
    #[error("master key file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks a configured master key.
pub fn check_master_key(key: &Secret, source: Source) -> Result<(), MasterKeyError> {
    let text = key.expose().trim();
    let lowered = text.to_ascii_lowercase();
    if text.len() < MIN_MASTER_KEY_LEN || PUBLIC_KEYS.contains(&lowered.as_str()) {
        let from = match source {
            Source::File => "general_settings.master_key",
            Source::Environment => "LITELLM_MASTER_KEY",
        };
        return Err(MasterKeyError::Weak(from));
    }
    Ok(())
}

/// A `UI_PASSWORD` shorter than this is refused.
const MIN_UI_PASSWORD_LEN: usize = 12;

/// Why `UI_PASSWORD` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to start: UI_PASSWORD is a publicly known or too short password (at least \
     {MIN_UI_PASSWORD_LEN} characters); set a long random one, or leave it unset to use the \
     master key"
)]
pub struct WeakPassword;

/// Checks `UI_PASSWORD`: the password login gives a proxy_admin session, so it must be as hard
/// to guess as the master key.
pub fn check_ui_password(password: &Secret) -> Result<(), WeakPassword> {
    let text = password.expose().trim();
    let lowered = text.to_ascii_lowercase();
    let known = PUBLIC_KEYS.contains(&lowered.as_str())
        || ["password123", "admin123456", "changeme1234", "letmein12345", "passwordpassword"]
            .contains(&lowered.as_str());
    if text.chars().count() < MIN_UI_PASSWORD_LEN || known {
        return Err(WeakPassword);
    }
    Ok(())
}

/// The generated master key kept at `path` (mode 0600), made on first use. Returns the key and
/// whether it was made now. An existing file that its group or others can read or write, or
/// that others could replace (the plugin loader's checks), is refused: its key may be known.
pub fn generated_master_key(path: &Path) -> Result<(Secret, bool), MasterKeyError> {
    let file_error = |source| MasterKeyError::File { path: path.to_owned(), source };
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let problems = key_file_problems(path, &file).map_err(file_error)?;
            if !problems.is_empty() {
                return Err(MasterKeyError::Exposed { path: path.to_owned(), problems });
            }
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(file_error)?;
            if text.trim().len() >= MIN_MASTER_KEY_LEN {
                return Ok((Secret::new(text.trim()), false));
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(file_error(error)),
    }
    let key = format!("sk-{}", random_hex(32));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(file_error)?;
    file.write_all(format!("{key}\n").as_bytes()).map_err(file_error)?;
    file.sync_all().map_err(file_error)?;
    Ok((Secret::new(key), true))
}

/// What lets someone other than the server's user (or root) know or choose the key in `file`
/// (open at `path`): group or other permission bits on it, and the loader's `StrictModes`
/// problems of the file and the folders above it.
fn key_file_problems(path: &Path, file: &std::fs::File) -> std::io::Result<Vec<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = file.metadata()?.mode();
        let mut problems = Vec::new();
        if mode & 0o044 != 0 {
            let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
                (true, true) => "its group and by others",
                (true, false) => "its group",
                _ => "others",
            };
            problems.push(format!(
                "file {} is readable by {who} (mode {:04o})",
                path.display(),
                mode & 0o7777
            ));
        }
        let canonical = path.canonicalize()?;
        problems.extend(
            crate::plugins::strict_mode_problems(&canonical).iter().map(ToString::to_string),
        );
        Ok(problems)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
        Ok(Vec::new())
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A new session key: `sk-`, the time it is made (milliseconds since the epoch, 12 hex digits),
/// then 24 random bytes (48 hex digits). The time is no secret (the `token` cookie carries it
/// too); it is there so that the stored hashes of keys made one after another sort together
/// ([`hash_key`]).
pub fn new_session_key() -> String {
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    format!("sk-{:012x}{}", millis & 0xffff_ffff_ffff, random_hex(24))
}

/// What is stored for a key: its SHA-256, hex — after the time a key of this server's
/// ([`new_session_key`]) carries. The sessions' index on the stored hash then grows at one end,
/// as sessions are made: a sign-in's commit writes the page at that end, shared with the
/// other sign-ins of its batch, where a hash alone lands on a random page of the index each
/// time (one page written, and later checkpointed, per sign-in). Any other key (one LiteLLM
/// made, behind the front door, or one this server made before keys carried their time) is
/// stored as LiteLLM stores keys: its SHA-256 alone.
pub fn hash_key(key: &str) -> String {
    let digest = hex(&Sha256::digest(key.as_bytes()));
    match made_at(key) {
        Some(time) => format!("{time}{digest}"),
        None => digest,
    }
}

/// The time a key of [`new_session_key`]'s form carries (its 12 hex digits).
fn made_at(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("sk-")?;
    let lower_hex = |byte: u8| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
    (rest.len() == 60 && rest.bytes().all(lower_hex)).then(|| &rest[..12])
}

/// Compares secrets in constant time, through their SHA-256 digests so that neither the
/// time nor an early exit on a length mismatch tells anything about the secret's length.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

/// The claims of the `token` cookie: LiteLLM's `ReturnedUITokenObject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UiTokenClaims {
    /// The user.
    pub user_id: String,
    /// The session key, usable as `Authorization: Bearer`.
    pub key: String,
    /// The user's email.
    pub user_email: Option<String>,
    /// The session's role.
    pub user_role: String,
    /// `sso` or `username_password`.
    pub login_method: String,
    /// LiteLLM Enterprise flag; always false here.
    pub premium_user: bool,
    /// The header the UI sends the key in.
    pub auth_header_name: String,
    /// LiteLLM UI flag; always false here.
    pub disabled_non_admin_personal_key_creation: bool,
    /// `SERVER_ROOT_PATH`.
    pub server_root_path: String,
    /// LiteLLM UI flag; always false here.
    pub password_reset_required: bool,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signs and verifies `token` cookies with the master key (HS256, as LiteLLM does).
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

/// Why a token was not accepted, in the JWT library's words: for the log, never for a client
/// (they name the algorithms it knows and what it could not parse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session token: {0}")]
pub struct InvalidToken(String);

impl TokenSigner {
    /// A signer keyed by the master key.
    pub fn new(master_key: &Secret) -> Self {
        let secret = master_key.expose().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Signs claims.
    pub fn sign(&self, claims: &UiTokenClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verifies the signature (HS256 only: `alg: none` and every other algorithm are refused)
    /// and the expiry.
    pub fn verify(&self, token: &str) -> Result<UiTokenClaims, InvalidToken> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<UiTokenClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| InvalidToken(error.to_string()))
    }
}

/// The `Set-Cookie` value for a session token (`path`: `SERVER_ROOT_PATH`, or `/`).
pub fn session_cookie(token: &str, path: &str, secure: bool, http_only: bool) -> String {
    let mut cookie = format!("{COOKIE_NAME}={token}; Path={path}; SameSite=Lax");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(path: &str, secure: bool) -> String {
    let mut cookie = format!(
        "{COOKIE_NAME}=; Path={path}; SameSite=Lax; HttpOnly; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> UiTokenClaims {
        UiTokenClaims {
            user_id: "alice".into(),
            key: "sk-abc".into(),
            user_email: Some("alice@example.com".into()),
            user_role: "internal_user".into(),
            login_method: "sso".into(),
            premium_user: false,
            auth_header_name: "Authorization".into(),
            disabled_non_admin_personal_key_creation: false,
            server_root_path: String::new(),
            password_reset_required: false,
            iat: 0,
            exp,
        }
    }

    #[test]
    fn tokens_verify_only_with_the_same_key_and_before_expiry() {
        let signer = TokenSigner::new(&Secret::new("sk-0123456789abcdef0123"));
        let future = chrono::Utc::now().timestamp() + 60;
        let token = signer.sign(&claims(future));
        assert_eq!(signer.verify(&token).unwrap(), claims(future));

        let other = TokenSigner::new(&Secret::new("sk-another-key-0000000000"));
        assert!(other.verify(&token).is_err());

        let expired = signer.sign(&claims(chrono::Utc::now().timestamp() - 1));
        assert!(signer.verify(&expired).unwrap_err().to_string().contains("xpired"));

        // alg: none, with the same claims.
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(signer.verify(&none).is_err());
    }

    #[test]
    fn weak_master_keys_are_refused() {
        for weak in ["sk-1234", "SK-1234", "short", "sk-admin"] {
            let err = check_master_key(&Secret::new(weak), Source::File).unwrap_err();
            assert!(err.to_string().contains("general_settings.master_key"), "{err}");
        }
        let err = check_master_key(&Secret::new("sk-1234"), Source::Environment).unwrap_err();
        assert!(err.to_string().contains("LITELLM_MASTER_KEY"), "{err}");
        assert!(
            check_master_key(&Secret::new(format!("sk-{}", random_hex(24))), Source::File).is_ok()
        );
    }

    #[test]
    fn weak_ui_passwords_are_refused() {
        for weak in ["admin", "password", "sk-1234", "short-pass", "PasswordPassword"] {
            assert!(check_ui_password(&Secret::new(weak)).is_err(), "{weak}");
        }
        assert!(check_ui_password(&Secret::new("correct horse battery staple")).is_ok());
    }

    #[test]
    fn a_generated_master_key_is_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("hookgate-key-{}", random_hex(4)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master_key");
        let (first, made) = generated_master_key(&path).unwrap();
        assert!(made && first.expose().starts_with("sk-"));
        let (second, made_again) = generated_master_key(&path).unwrap();
        assert!(!made_again);
        assert_eq!(first.expose(), second.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

            // A kept key that others may read is refused, naming the file and its mode.
            let set = |mode| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            };
            set(0o644);
            let error = generated_master_key(&path).unwrap_err().to_string();
            let canonical = path.canonicalize().unwrap();
            assert!(
                error.starts_with(&format!(
                    "refusing to start: others can read or change the generated master key in \
                     {}:\n    file {} is readable by its group and by others (mode 0644)\n  \
                     whoever reads it",
                    path.display(),
                    path.display()
                )),
                "{error}"
            );
            assert!(!error.contains(first.expose()), "{error}");
            set(0o604);
            let error = generated_master_key(&path).unwrap_err().to_string();
            assert!(error.contains("is readable by others (mode 0604)"), "{error}");
            set(0o620);
            let error = generated_master_key(&path).unwrap_err().to_string();
            assert!(
                error.contains(&format!(
                    "file {} is writable by its group (mode 0620)",
                    canonical.display()
                )),
                "{error}"
            );
            // Even a file too short to hold a key is not rewritten in place when others may
            // read it.
            std::fs::write(&path, "").unwrap();
            set(0o644);
            assert!(generated_master_key(&path).is_err());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
            set(0o600);
            assert!(generated_master_key(&path).unwrap().1, "made again");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keys_are_hashed_and_cookies_flagged() {
        let key = new_session_key();
        assert!(key.starts_with("sk-") && key.len() == 63, "{key}");
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(secrets_equal("a", "a") && !secrets_equal("a", "b") && !secrets_equal("a", "ab"));
        assert_eq!(
            session_cookie("t", "/", true, true),
            "token=t; Path=/; SameSite=Lax; HttpOnly; Secure"
        );
        assert_eq!(
            session_cookie("t", "/litellm", false, false),
            "token=t; Path=/litellm; SameSite=Lax"
        );
        assert!(clear_cookie("/", false).contains("Max-Age=0"));
    }

    #[test]
    fn the_hashes_of_this_servers_keys_sort_in_the_order_they_were_made() {
        let first = new_session_key();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_session_key();
        let (first_hash, second_hash) = (hash_key(&first), hash_key(&second));
        assert!(first_hash < second_hash, "{first_hash} then {second_hash}");
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
        let made = u64::from_str_radix(&second_hash[..12], 16).unwrap();
        assert!(made <= now && now - made < 60_000, "the time it was made");
        assert_eq!(&second_hash[..12], &second[3..15]);
        assert_eq!(second_hash[12..], hex(&Sha256::digest(second.as_bytes())), "then its SHA-256");
        // Its last digit changed (to another digit: one in sixteen keys already ends in 0).
        let last = if first.ends_with('0') { '1' } else { '0' };
        let changed = format!("{}{last}", &first[..first.len() - 1]);
        assert_ne!(changed, first);
        assert_ne!(hash_key(&first), hash_key(&changed), "the whole key");
    }

    #[test]
    fn other_keys_are_stored_as_litellm_stores_them() {
        let sha = |key: &str| hex(&Sha256::digest(key.as_bytes()));
        // LiteLLM's own (`sk-` and `secrets.token_urlsafe(16)`), behind the front door.
        assert_eq!(hash_key("sk-3jD8z_f9Qk1mV-a7bX2cYw"), sha("sk-3jD8z_f9Qk1mV-a7bX2cYw"));
        // This server's before keys carried their time: sessions made then still match.
        let before = format!("sk-{}", random_hex(24));
        assert_eq!(hash_key(&before), sha(&before));
        // Not quite this server's form.
        let upper = format!("sk-{}", "A".repeat(60));
        assert_eq!(hash_key(&upper), sha(&upper));
        let long = format!("sk-{}", "a".repeat(61));
        assert_eq!(hash_key(&long), sha(&long));
    }
}
