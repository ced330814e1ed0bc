//! The user directory (`POST /user_directory/search`).

use axum::extract::State;
use ruma::{OwnedMxcUri, api::client::user_directory::search_users};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse},
};

/// The most users one search returns, whatever the client asks.
const MAX_LIMIT: usize = 100;

/// `POST /_matrix/client/v3/user_directory/search`
pub async fn search_users_route(
    State(services): State<AppState>,
    request: Ruma<search_users::v3::Request>,
) -> Result<RumaResponse<search_users::v3::Response>> {
    let sender = request.sender()?;
    let limit = usize::try_from(u64::from(request.body.limit)).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let (found, limited) = services.user_directory.search(&sender.user_id, &request.body.search_term, limit)?;
    let results = found
        .into_iter()
        .map(|user| {
            let mut result = search_users::v3::User::new(user.user_id);
            result.display_name = user.profile.displayname;
            // A remote member event may carry anything; pass on only what is an MXC URI.
            result.avatar_url = user.profile.avatar_url.filter(|url| url.starts_with("mxc://")).map(OwnedMxcUri::from);
            result
        })
        .collect();
    Ok(RumaResponse(search_users::v3::Response::new(results, limited)))
}
