//! Where passwords come from: an option, standard input, a prompt, or the
//! system's random number generator.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

use rand::RngCore;
use rand::rngs::OsRng;

use crate::cli::PasswordSource;
use crate::error::{Error, Result};

const GENERATED_LEN: usize = 24;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub enum Password {
    Given(String),
    Generated(String),
}

impl Password {
    pub fn as_str(&self) -> &str {
        match self {
            Password::Given(password) | Password::Generated(password) => password,
        }
    }

    /// The password if the user has not seen it yet and it must be printed.
    pub fn generated(&self) -> Option<&str> {
        match self {
            Password::Generated(password) => Some(password),
            Password::Given(_) => None,
        }
    }
}

/// `--password`, else `--password-stdin`, else a freshly generated password.
pub fn given_or_generated(source: &PasswordSource) -> Result<Password> {
    if let Some(password) = &source.password {
        if password.is_empty() {
            return Err(Error::Usage("--password must not be empty".to_owned()));
        }
        return Ok(Password::Given(password.clone()));
    }
    if source.password_stdin {
        return read_stdin().map(Password::Given);
    }
    generate().map(Password::Generated)
}

/// The password for `login`: from standard input, or typed at a prompt.
pub fn for_login(password_stdin: bool, user: &str) -> Result<String> {
    if password_stdin {
        return read_stdin();
    }
    if !io::stdin().is_terminal() {
        return Err(Error::Usage(
            "no password given: pass --password-stdin to read it from standard input".to_owned(),
        ));
    }
    let password = prompt_hidden(&format!("Password for {user}: "))?;
    if password.is_empty() {
        return Err(Error::Usage("the password must not be empty".to_owned()));
    }
    Ok(password)
}

/// The first line of standard input (typed without echo when it is a terminal).
fn read_stdin() -> Result<String> {
    let password = if io::stdin().is_terminal() {
        prompt_hidden("Password: ")?
    } else {
        read_line()?
    };
    if password.is_empty() {
        return Err(Error::Usage(
            "--password-stdin: standard input has no password (e.g. use <<< \"$PASSWORD\")"
                .to_owned(),
        ));
    }
    Ok(password)
}

fn read_line() -> Result<String> {
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::PasswordInput)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_owned())
}

/// Prompts on stderr and reads a line with terminal echo switched off via
/// `stty` (best effort: where that fails, the input is echoed).
fn prompt_hidden(prompt: &str) -> Result<String> {
    let mut stderr = io::stderr();
    // The prompt is a courtesy; failing to show it is not fatal.
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let echo_off = stty("-echo");
    let line = read_line();
    if echo_off {
        stty("echo");
        let _ = writeln!(stderr);
    }
    line
}

fn stty(setting: &str) -> bool {
    Command::new("stty")
        .arg(setting)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A random alphanumeric password (about 143 bits) from the OS generator.
pub fn generate() -> Result<String> {
    // Largest multiple of the alphabet size that fits in a byte: rejecting
    // bytes at or above it keeps every character equally likely.
    let bound = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut password = String::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 64];
    while password.len() < GENERATED_LEN {
        OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|err| Error::Usage(format!("cannot generate a password: {err}")))?;
        for byte in buf.iter().copied().filter(|byte| *byte < bound) {
            if password.len() == GENERATED_LEN {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_distinct() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_eq!(first.len(), GENERATED_LEN);
        assert!(
            first.bytes().all(|byte| byte.is_ascii_alphanumeric()),
            "{first}"
        );
        assert_ne!(first, second);
    }
}
