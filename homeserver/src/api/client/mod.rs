//! The client-server API.

mod account;
pub use account::deactivate_account;
mod account_data;
mod backup;
mod capabilities;
mod dehydrated_device;
mod device;
mod directory;
mod discovery;
mod filter;
mod keys;
pub(crate) use keys::claimed_keys_to_ruma;
mod membership;
mod message;
mod profile;
mod presence;
mod push;
mod receipt;
mod relations;
mod room;
mod search;
mod session;
mod state;
mod sync;
mod to_device;
pub(crate) use to_device::add_local_recipient;
mod user_directory;

use axum::Router;
use ruma::api::client as c;

use crate::router::{AppState, RumaRouter};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .ruma::<c::discovery::get_supported_versions::Request, _, _>(discovery::get_supported_versions_route)
        .ruma::<c::discovery::discover_homeserver::Request, _, _>(discovery::discover_homeserver_route)
        .route("/.well-known/matrix/server", axum::routing::get(discovery::well_known_server_route))
        .ruma::<c::discovery::get_capabilities::v3::Request, _, _>(capabilities::get_capabilities_route)
        .ruma::<c::account::register::v3::Request, _, _>(account::register_route)
        .ruma::<c::account::get_username_availability::v3::Request, _, _>(account::get_username_availability_route)
        .ruma::<c::account::check_registration_token_validity::v1::Request, _, _>(
            account::check_registration_token_validity_route,
        )
        .ruma::<c::account::whoami::v3::Request, _, _>(account::whoami_route)
        .ruma::<c::presence::set_presence::v3::Request, _, _>(presence::set_presence_route)
        .ruma::<c::presence::get_presence::v3::Request, _, _>(presence::get_presence_route)
        .ruma::<c::receipt::create_receipt::v3::Request, _, _>(receipt::create_receipt_route)
        .ruma::<c::read_marker::set_read_marker::v3::Request, _, _>(receipt::set_read_marker_route)
        .ruma::<c::typing::create_typing_event::v3::Request, _, _>(receipt::create_typing_event_route)
        .ruma::<c::account::request_openid_token::v3::Request, _, _>(account::request_openid_token_route)
        .ruma::<c::account::change_password::v3::Request, _, _>(account::change_password_route)
        .ruma::<c::account::deactivate::v3::Request, _, _>(account::deactivate_route)
        .ruma::<c::session::get_login_types::v3::Request, _, _>(session::get_login_types_route)
        .ruma::<c::session::login::v3::Request, _, _>(session::login_route)
        .ruma::<c::session::logout::v3::Request, _, _>(session::logout_route)
        .ruma::<c::session::logout_all::v3::Request, _, _>(session::logout_all_route)
        .ruma::<c::session::refresh_token::v3::Request, _, _>(session::refresh_token_route)
        .ruma::<c::device::get_devices::v3::Request, _, _>(device::get_devices_route)
        .ruma::<c::device::get_device::v3::Request, _, _>(device::get_device_route)
        .ruma::<c::device::update_device::v3::Request, _, _>(device::update_device_route)
        .ruma::<c::device::delete_device::v3::Request, _, _>(device::delete_device_route)
        .ruma::<c::device::delete_devices::v3::Request, _, _>(device::delete_devices_route)
        .ruma::<c::profile::get_profile::v3::Request, _, _>(profile::get_profile_route)
        .ruma::<c::profile::get_profile_field::v3::Request, _, _>(profile::get_profile_field_route)
        .ruma::<c::profile::set_profile_field::v3::Request, _, _>(profile::set_profile_field_route)
        .ruma::<c::profile::delete_profile_field::v3::Request, _, _>(profile::delete_profile_field_route)
        .ruma::<c::config::get_global_account_data::v3::Request, _, _>(account_data::get_global_account_data_route)
        .ruma::<c::config::set_global_account_data::v3::Request, _, _>(account_data::set_global_account_data_route)
        .ruma::<c::filter::create_filter::v3::Request, _, _>(filter::create_filter_route)
        .ruma::<c::filter::get_filter::v3::Request, _, _>(filter::get_filter_route)
        .ruma::<c::room::create_room::v3::Request, _, _>(room::create_room_route)
        .ruma::<c::membership::join_room_by_id::v3::Request, _, _>(membership::join_room_by_id_route)
        .ruma::<c::membership::join_room_by_id_or_alias::v3::Request, _, _>(membership::join_room_by_id_or_alias_route)
        .ruma::<c::membership::invite_user::v3::Request, _, _>(membership::invite_user_route)
        .ruma::<c::membership::leave_room::v3::Request, _, _>(membership::leave_room_route)
        .ruma::<c::knock::knock_room::v3::Request, _, _>(membership::knock_room_route)
        .ruma::<c::membership::forget_room::v3::Request, _, _>(membership::forget_room_route)
        .ruma::<c::membership::kick_user::v3::Request, _, _>(membership::kick_user_route)
        .ruma::<c::membership::ban_user::v3::Request, _, _>(membership::ban_user_route)
        .ruma::<c::membership::unban_user::v3::Request, _, _>(membership::unban_user_route)
        .ruma::<c::membership::joined_rooms::v3::Request, _, _>(membership::joined_rooms_route)
        .ruma::<c::membership::get_member_events::v3::Request, _, _>(membership::get_member_events_route)
        .ruma::<c::membership::joined_members::v3::Request, _, _>(membership::joined_members_route)
        .ruma::<c::message::send_message_event::v3::Request, _, _>(message::send_message_event_route)
        .ruma::<c::message::get_message_events::v3::Request, _, _>(message::get_message_events_route)
        .ruma::<c::redact::redact_event::v3::Request, _, _>(message::redact_event_route)
        .ruma::<c::room::get_room_event::v3::Request, _, _>(message::get_room_event_route)
        .ruma::<c::state::get_state_events::v3::Request, _, _>(state::get_state_events_route)
        .ruma_empty_last::<c::state::get_state_event_for_key::v3::Request, _, _>(state::get_state_event_for_key_route)
        .ruma_empty_last::<c::state::send_state_event::v3::Request, _, _>(state::send_state_event_route)
        .ruma::<c::sync::sync_events::v3::Request, _, _>(sync::sync_events_route)
        .ruma::<c::keys::upload_keys::v3::Request, _, _>(keys::upload_keys_route)
        .ruma::<c::keys::get_keys::v3::Request, _, _>(keys::get_keys_route)
        .ruma::<c::keys::claim_keys::v3::Request, _, _>(keys::claim_keys_route)
        .ruma::<c::keys::get_key_changes::v3::Request, _, _>(keys::get_key_changes_route)
        .ruma::<c::keys::upload_signing_keys::v3::Request, _, _>(keys::upload_signing_keys_route)
        .ruma::<c::keys::upload_signatures::v3::Request, _, _>(keys::upload_signatures_route)
        .ruma::<c::to_device::send_event_to_device::v3::Request, _, _>(to_device::send_to_device_route)
        .ruma::<c::dehydrated_device::put_dehydrated_device::unstable::Request, _, _>(dehydrated_device::put_dehydrated_device_route)
        .ruma::<c::dehydrated_device::get_dehydrated_device::unstable::Request, _, _>(dehydrated_device::get_dehydrated_device_route)
        .ruma::<c::dehydrated_device::delete_dehydrated_device::unstable::Request, _, _>(dehydrated_device::delete_dehydrated_device_route)
        .ruma::<c::dehydrated_device::get_events::unstable::Request, _, _>(dehydrated_device::get_dehydrated_events_route)
        .ruma::<c::backup::create_backup_version::v3::Request, _, _>(backup::create_backup_version_route)
        .ruma::<c::backup::get_latest_backup_info::v3::Request, _, _>(backup::get_latest_backup_info_route)
        .ruma::<c::backup::get_backup_info::v3::Request, _, _>(backup::get_backup_info_route)
        .ruma::<c::backup::update_backup_version::v3::Request, _, _>(backup::update_backup_version_route)
        .ruma::<c::backup::delete_backup_version::v3::Request, _, _>(backup::delete_backup_version_route)
        .ruma::<c::backup::add_backup_keys::v3::Request, _, _>(backup::add_backup_keys_route)
        .ruma::<c::backup::add_backup_keys_for_room::v3::Request, _, _>(backup::add_backup_keys_for_room_route)
        .ruma::<c::backup::add_backup_keys_for_session::v3::Request, _, _>(backup::add_backup_keys_for_session_route)
        .ruma::<c::backup::get_backup_keys::v3::Request, _, _>(backup::get_backup_keys_route)
        .ruma::<c::backup::get_backup_keys_for_room::v3::Request, _, _>(backup::get_backup_keys_for_room_route)
        .ruma::<c::backup::get_backup_keys_for_session::v3::Request, _, _>(backup::get_backup_keys_for_session_route)
        .ruma::<c::backup::delete_backup_keys::v3::Request, _, _>(backup::delete_backup_keys_route)
        .ruma::<c::backup::delete_backup_keys_for_room::v3::Request, _, _>(backup::delete_backup_keys_for_room_route)
        .ruma::<c::backup::delete_backup_keys_for_session::v3::Request, _, _>(backup::delete_backup_keys_for_session_route)
        .ruma::<c::alias::create_alias::v3::Request, _, _>(directory::create_alias_route)
        .ruma::<c::alias::get_alias::v3::Request, _, _>(directory::get_alias_route)
        .ruma::<c::alias::delete_alias::v3::Request, _, _>(directory::delete_alias_route)
        .ruma::<c::room::aliases::v3::Request, _, _>(directory::get_room_aliases_route)
        .ruma::<c::directory::get_room_visibility::v3::Request, _, _>(directory::get_room_visibility_route)
        .ruma::<c::directory::set_room_visibility::v3::Request, _, _>(directory::set_room_visibility_route)
        .ruma::<c::directory::get_public_rooms::v3::Request, _, _>(directory::get_public_rooms_route)
        .ruma::<c::directory::get_public_rooms_filtered::v3::Request, _, _>(directory::get_public_rooms_filtered_route)
        .ruma::<c::config::get_room_account_data::v3::Request, _, _>(account_data::get_room_account_data_route)
        .ruma::<c::config::set_room_account_data::v3::Request, _, _>(account_data::set_room_account_data_route)
        .ruma::<c::tag::get_tags::v3::Request, _, _>(account_data::get_tags_route)
        .ruma::<c::tag::create_tag::v3::Request, _, _>(account_data::create_tag_route)
        .ruma::<c::tag::delete_tag::v3::Request, _, _>(account_data::delete_tag_route)
        .ruma::<c::context::get_context::v3::Request, _, _>(message::get_context_route)
        .ruma::<c::relations::get_relating_events::v1::Request, _, _>(relations::get_relating_events_route)
        .ruma::<c::relations::get_relating_events_with_rel_type::v1::Request, _, _>(relations::get_relating_events_with_rel_type_route)
        .ruma::<c::relations::get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
            relations::get_relating_events_with_rel_type_and_event_type_route,
        )
        .ruma::<c::threads::get_threads::v1::Request, _, _>(relations::get_threads_route)
        .ruma::<c::room::upgrade_room::v3::Request, _, _>(room::upgrade_room_route)
        .ruma::<c::room::get_summary::v1::Request, _, _>(room::get_summary_route)
        .ruma::<c::room::report_content::v3::Request, _, _>(room::report_event_route)
        .ruma::<c::room::report_room::v3::Request, _, _>(room::report_room_route)
        .ruma::<c::space::get_hierarchy::v1::Request, _, _>(room::get_hierarchy_route)
        .ruma::<c::room::get_event_by_timestamp::v1::Request, _, _>(room::timestamp_to_event_route)
        .ruma::<c::search::search_events::v3::Request, _, _>(search::search_route)
        .ruma::<c::user_directory::search_users::v3::Request, _, _>(user_directory::search_users_route)
        .ruma::<c::push::get_pushrules_all::v3::Request, _, _>(push::get_pushrules_all_route)
        .ruma::<c::push::get_pushrules_global_scope::v3::Request, _, _>(push::get_pushrules_global_scope_route)
        .ruma::<c::push::get_pushrule::v3::Request, _, _>(push::get_pushrule_route)
        .ruma::<c::push::set_pushrule::v3::Request, _, _>(push::set_pushrule_route)
        .ruma::<c::push::delete_pushrule::v3::Request, _, _>(push::delete_pushrule_route)
        .ruma::<c::push::get_pushrule_enabled::v3::Request, _, _>(push::get_pushrule_enabled_route)
        .ruma::<c::push::set_pushrule_enabled::v3::Request, _, _>(push::set_pushrule_enabled_route)
        .ruma::<c::push::get_pushrule_actions::v3::Request, _, _>(push::get_pushrule_actions_route)
        .ruma::<c::push::set_pushrule_actions::v3::Request, _, _>(push::set_pushrule_actions_route)
}

/// Wraps JSON we built into the `Raw` ruma response types carry.
pub(crate) fn to_raw<T>(value: &serde_json::Value) -> crate::Result<ruma::serde::Raw<T>> {
    let json = serde_json::value::to_raw_value(value).map_err(|e| crate::Error::internal(e.to_string()))?;
    Ok(ruma::serde::Raw::from_json(json))
}
