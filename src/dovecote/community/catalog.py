"""What Dovecote tells SelfCommunity's clients about the community: preferences and features.

SelfCommunity keeps these in its database and edits them in its admin; here they are the
server's configuration. Each preference's default is what the client needs to work with
Dovecote; an operator overrides any value with `DOVECOTE_PREFERENCES` (docs/API.md, "The web page
and other origins"). Ids are positions in these tuples: add new entries at the end so ids stay
stable.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = str | int | bool


@dataclass(frozen=True, slots=True)
class Preference:
    section: str
    name: str
    value: Value
    type: str
    help: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def _flag(section: str, name: str, value: bool, help: str) -> Preference:
    return Preference(section, name, value, "boolean", help)


def _text(section: str, name: str, value: str, help: str, type: str = "string") -> Preference:
    return Preference(section, name, value, type, help)


def _url(name: str, value: str, help: str) -> Preference:
    return Preference("configurations", f"url_template_{name}", value, "string", help)


# react-core's router reads all twelve `url_template_*` entries at start and fails on a missing
# one; the defaults are react-core's own routes, in the `{param}` notation of the preferences.
URL_TEMPLATES: tuple[Preference, ...] = (
    _url("post", "/post/{id}/", "Link to a post."),
    _url("discussion", "/discussion/{id}/", "Link to a discussion."),
    _url("status", "/status/{id}/", "Link to a status."),
    _url(
        "comment",
        "/{contribution_type}/{contribution_id}/comment/{id}/",
        "Link to a comment.",
    ),
    _url("category", "/category/{id}/{slug}/", "Link to a category."),
    _url("categories_list", "/categories/", "Link to the list of categories."),
    _url("profile", "/user/{id}/", "Link to a member's profile (on the community's site)."),
    _url("profile_settings", "/user/{id}/edit/", "Link to a member's profile settings."),
    _url("notifications", "/notification/", "Link to the notifications page."),
    _url("private_message", "/messages/{id}/", "Link to the conversation with a member."),
    _url("incubator", "/incubator/{id}/", "Link to an incubator."),
    _url("live_stream", "/live/{slug}/", "Link to a live stream."),
)

PREFERENCES: tuple[Preference, ...] = (
    _flag("addons", "private_messages_enabled", True, "Private messages between members."),
    _flag("addons", "incubator_enabled", False, "Incubators (not served by Dovecote)."),
    _flag("addons", "polls_enabled", False, "Polls (not served by Dovecote)."),
    _flag("addons", "loyalty_points_collection", False, "Loyalty points (not served)."),
    _flag("addons", "closed_community", False, "Only members see the community."),
    _flag("addons", "share_post_enabled", False, "Sharing posts (not served)."),
    _flag("addons", "post_geolocation_enabled", False, "Geolocated posts (not served)."),
    *URL_TEMPLATES,
    _flag("configurations", "follow_enabled", True, "Members follow each other."),
    _flag("configurations", "connection_enabled", False, "Connections instead of follows."),
    _flag("configurations", "people_search_enabled", False, "Searching people (not served)."),
    _flag("configurations", "post_only_staff_enabled", False, "Only staff post."),
    _flag("configurations", "groups_enabled", False, "Groups (not served yet)."),
    _flag("configurations", "events_enabled", False, "Events (not served)."),
    _flag("configurations", "courses_enabled", False, "Courses (not served)."),
    _flag("configurations", "live_stream_enabled", False, "Live streams (not served)."),
    _flag("configurations", "payments_enabled", False, "Payments (not served)."),
    _flag("configurations", "scheduled_posts_enabled", False, "Scheduled posts (not served)."),
    _flag("configurations", "video_autoplay_enabled", False, "Play videos as they scroll in."),
    _text(
        "configurations",
        "accepted_media_mimetypes",
        "image/jpeg,image/png,image/gif,image/webp,video/mp4,video/webm,application/pdf",
        "Media types the upload buttons offer.",
    ),
    _text("text", "application_name", "Dovecote", "The community's name."),
    _text("text", "application_slogan1", "", "Title given to the community."),
    _text("text", "application_slogan2", "", "Slogan of the community."),
    _text("text", "application_copyright", "", "Copyright line."),
    _text("logo", "navbar_logo", "", "Logo in the top bar (an image URL).", "image"),
    _text("logo", "navbar_logo_mobile", "", "Logo in the top bar on phones.", "image"),
    _text("logo", "logo_light", "", "Logo on dark backgrounds.", "image"),
    _text("logo", "logo_dark", "", "Logo on light backgrounds.", "image"),
    _text("colors", "colorprimary", "#2f5d8a", "Main color.", "color"),
    _text("colors", "colorsecondary", "#b2452b", "Secondary color.", "color"),
    _text("colors", "colorback", "#f7f7f5", "Main background color.", "color"),
    _text("colors", "navbarback", "#ffffff", "Top bar background color.", "color"),
    _text("colors", "font_color", "#222222", "Font color.", "color"),
    _text("colors", "font_color_secondary", "#5f5f5f", "Secondary font color.", "color"),
    _text("staff", "staff_badge_label", "Staff", "Label of the staff badge."),
    _text("staff", "staff_badge_icon", "", "Icon of the staff badge (an image URL).", "image"),
    _text("images", "app_icon", "", "The app icon (an image URL).", "image"),
    _text("images", "user_default_cover", "", "Default cover of a profile.", "image"),
)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    enabled: bool


# SelfCommunity's feature names (`@selfcommunity/types` SCFeatureName). Dovecote serves the
# private-message part of API v2 and none of the platform's other modules; `grouping` and
# `tagging` turn on when groups are served (SPEC §3.8).
ENABLED_FEATURES = frozenset({"api_v2"})
FEATURE_NAMES: tuple[str, ...] = (
    "interests",
    "customize",
    "addons",
    "domain",
    "social_providers",
    "community_subscription",
    "seo",
    "advertising",
    "google_cloud_api",
    "hotjar",
    "sqreen",
    "incubators",
    "cms",
    "legal_pages",
    "scoring",
    "user_roles",
    "email_manager",
    "loyalty",
    "broadcast",
    "invitation",
    "app_settings",
    "moderation_flags",
    "moderation_contents",
    "moderation_users_blocked",
    "moderation_users",
    "data_provisioning_dashboard",
    "data_provisioning_users",
    "data_provisioning_contents",
    "data_provisioning_interests",
    "data_provisioning_polls",
    "data_provisioning_reports",
    "registration_alerts",
    "social_share",
    "stream_settings",
    "tagging",
    "api_v2",
    "webhook",
    "headless",
    "customize_headless",
    "system_pages",
    "reaction",
    "grouping",
    "event",
    "live_stream",
    "payments",
    "course",
)
FEATURES: tuple[Feature, ...] = tuple(Feature(n, n in ENABLED_FEATURES) for n in FEATURE_NAMES)
