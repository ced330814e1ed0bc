//! User-interactive authentication: sessions, flows and stage checks.
//!
//! Sessions live in memory: the spec lets a server forget them, and a client whose session is
//! gone simply starts over. Completed stages are remembered per session.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::StatusCode;
use rand::{Rng, distributions::Alphanumeric};
use ruma::api::{
    client::uiaa::{AuthData, AuthFlow, AuthType, UiaaInfo, UserIdentifier},
    error::{ErrorKind, StandardErrorBody},
};
use ruma::UserId;

use super::users::Users;
use crate::error::{Error, Result};

const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
struct Session {
    completed: Vec<AuthType>,
    created: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct Uiaa {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

/// What the client proved in a completed stage, beyond having completed it.
pub enum Completed {
    /// The flow is done.
    Done,
}

impl Uiaa {
    fn new_session(&self) -> String {
        let id: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, s| s.created.is_some_and(|t| now.duration_since(t) < SESSION_LIFETIME));
            sessions.insert(id.clone(), Session { completed: Vec::new(), created: Some(now) });
        }
        id
    }

    fn completed(&self, session: Option<&str>) -> Vec<AuthType> {
        let Some(session) = session else { return Vec::new() };
        self.sessions
            .lock()
            .ok()
            .and_then(|sessions| sessions.get(session).map(|s| s.completed.clone()))
            .unwrap_or_default()
    }

    fn finish(&self, session: Option<&str>) {
        if let (Some(session), Ok(mut sessions)) = (session, self.sessions.lock()) {
            sessions.remove(session);
        }
    }

    /// The 401 answer that starts (or continues) a flow made of the single stage `stage`.
    pub fn challenge(&self, stage: AuthType, session: Option<&str>, failure: Option<Error>) -> Error {
        let mut info = UiaaInfo::new(vec![AuthFlow::new(vec![stage])]);
        let session = session.map(str::to_owned).unwrap_or_else(|| self.new_session());
        info.completed = self.completed(Some(&session));
        info.session = Some(session);
        if let Some(Error::Matrix { kind, message, .. }) = failure {
            info.auth_error = Some(Box::new(StandardErrorBody::new(kind, message)));
        }
        Error::Uiaa(Box::new(info))
    }

    /// Requires the account password of `user_id` (for device deletion, password change,
    /// deactivation). A wrong password continues the flow with an `M_FORBIDDEN` auth error.
    pub async fn require_password(&self, users: &Users, user_id: &UserId, auth: Option<&AuthData>) -> Result<Completed> {
        let Some(auth) = auth else {
            return Err(self.challenge(AuthType::Password, None, None));
        };
        let session = auth.session();
        let AuthData::Password(password) = auth else {
            return Err(self.challenge(
                AuthType::Password,
                session,
                Some(Error::matrix(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, "Unsupported authentication type")),
            ));
        };
        let claimed = match &password.identifier {
            UserIdentifier::Matrix(id) => users.user_id_for_login(&id.user)?,
            _ => return Err(Error::forbidden("Only m.id.user identifiers are supported")),
        };
        if claimed != user_id {
            return Err(Error::forbidden("Invalid username or password"));
        }
        if !users.check_password(user_id, &password.password).await? {
            return Err(self.challenge(AuthType::Password, session, Some(Error::forbidden("Invalid password"))));
        }
        self.finish(session);
        Ok(Completed::Done)
    }

    /// Checks a registration stage: `m.login.dummy` when registration is open, or a
    /// registration token from `valid_tokens`.
    pub fn require_registration_stage(&self, auth: Option<&AuthData>, stage: AuthType, valid_tokens: &[String]) -> Result<Completed> {
        let Some(auth) = auth else {
            return Err(self.challenge(stage, None, None));
        };
        let session = auth.session();
        let passed = match (auth, &stage) {
            (AuthData::Dummy(_), AuthType::Dummy) => true,
            (AuthData::RegistrationToken(token), AuthType::RegistrationToken) => {
                if !valid_tokens.iter().any(|valid| valid == &token.token) {
                    return Err(self.challenge(
                        stage,
                        session,
                        Some(Error::matrix(StatusCode::UNAUTHORIZED, ErrorKind::Forbidden, "Invalid registration token")),
                    ));
                }
                true
            }
            _ => false,
        };
        if !passed {
            return Err(self.challenge(
                stage,
                session,
                Some(Error::matrix(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, "This stage is not offered")),
            ));
        }
        self.finish(session);
        Ok(Completed::Done)
    }
}
