//! The crate's single error type and its mapping to process exit codes.

use std::io;

/// Everything that can make a command fail. `main` prints it as
/// `error: <Display>` and exits with [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach the Myelin server at {server}: {reason} \
         (is it running? set --server or MYELIN_ADMIN_SERVER)"
    )]
    Unreachable { server: String, reason: String },

    #[error(
        "the Myelin server at {server} did not answer within {secs}s \
         (set --timeout or MYELIN_ADMIN_TIMEOUT to wait longer)"
    )]
    Timeout { server: String, secs: u64 },

    #[error(
        "this command needs an admin access token: pass --token or set MYELIN_ADMIN_TOKEN \
         (get one with `myelin-admin login <user> --password-stdin`)"
    )]
    MissingToken,

    #[error("the server rejected the access token ({errcode}): {message}")]
    TokenRejected { errcode: String, message: String },

    #[error(
        "not a server admin: the server refused the request ({errcode}: {message}); \
         use the access token of a server admin"
    )]
    NotAdmin { errcode: String, message: String },

    #[error("the server refused the request (HTTP {status}) {errcode}: {message}")]
    Matrix {
        status: u16,
        errcode: String,
        message: String,
    },

    #[error(
        "user {0} already exists (use `myelin-admin user reset-password` to change its password)"
    )]
    UserExists(String),

    #[error("unexpected response from {url} (HTTP {status}): {detail}")]
    UnexpectedResponse {
        url: String,
        status: u16,
        detail: String,
    },

    #[error("request to {url} failed: {reason}")]
    Http { url: String, reason: String },

    /// Bad input that clap could not catch (user IDs, empty passwords, ...).
    #[error("{0}")]
    Usage(String),

    #[error("cannot read the password: {0}")]
    PasswordInput(#[source] io::Error),

    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

impl Error {
    /// The one place exit codes are decided.
    ///
    /// * 1 — the server refused or failed the request
    /// * 2 — usage/configuration problem, or the server cannot be reached
    /// * 3 — the access token was rejected or is not an admin's
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::MissingToken
            | Error::Usage(_) => 2,
            Error::TokenRejected { .. } | Error::NotAdmin { .. } => 3,
            Error::Matrix { .. }
            | Error::UserExists(_)
            | Error::UnexpectedResponse { .. }
            | Error::Http { .. }
            | Error::PasswordInput(_)
            | Error::Output(_) => 1,
        }
    }

    /// Output went to a closed pipe (`myelin-admin user list | head`): not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(err) if err.kind() == io::ErrorKind::BrokenPipe)
    }

    /// True for a Matrix `M_NOT_FOUND` answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Matrix { status: 404, errcode, .. } if errcode == "M_NOT_FOUND")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let unreachable = Error::Unreachable {
            server: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(unreachable.exit_code(), 2);
        assert_eq!(Error::MissingToken.exit_code(), 2);
        let rejected = Error::TokenRejected {
            errcode: "M_UNKNOWN_TOKEN".into(),
            message: "Invalid token".into(),
        };
        assert_eq!(rejected.exit_code(), 3);
        assert_eq!(
            rejected.to_string(),
            "the server rejected the access token (M_UNKNOWN_TOKEN): Invalid token"
        );
        let not_admin = Error::NotAdmin {
            errcode: "M_FORBIDDEN".into(),
            message: "You are not a server admin".into(),
        };
        assert_eq!(not_admin.exit_code(), 3);
        let not_found = Error::Matrix {
            status: 404,
            errcode: "M_NOT_FOUND".into(),
            message: "User not found".into(),
        };
        assert_eq!(not_found.exit_code(), 1);
        assert!(not_found.is_not_found());
        assert!(Error::Output(io::Error::from(io::ErrorKind::BrokenPipe)).is_broken_pipe());
    }
}
