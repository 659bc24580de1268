//! The one error type of the HTTP layer: it picks the status and the public message, and
//! answers in HTML to a browser and in LiteLLM's JSON error shape to an API client.
//!
//! Handlers return `Result<_, ApiError>` and use `?`; they never say how to answer. The request
//! id and the representation (JSON, or an HTML page with a title that fits the route's
//! [`Surface`]) are attached in one place, [`super::finish_errors`], on the way out.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde_json::json;

use crate::{litellm::FrontDoorError, signin::SignInError};

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    request_id: Option<String>,
    /// Answered as an HTML page with this heading; `None`: as JSON.
    page: Option<&'static str>,
    /// Boxed, as the redirect: rare, and every `Result` carries this type's size.
    link: Option<Box<(String, &'static str)>>,
    /// Answered as a `303 See Other` to this location instead (a page that needs a sign-in).
    redirect: Option<Box<str>>,
}

/// Which part of the server answered, which decides how its errors look: the routes mark their
/// responses with it ([`Surface::mark`]), [`super::finish_errors`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The management API and everything else for programs: JSON, always.
    Api,
    /// The Admin UI's pages: HTML, always, headed "Request failed".
    Ui,
    /// The UI's password login form: HTML, always, headed "Sign-in failed".
    LoginForm,
    /// The single sign-on routes a browser or a program follows: HTML to a browser, JSON
    /// otherwise; headed "Sign-in failed".
    SignIn,
    /// Any route, before routing (e.g. a refused Host): HTML to a browser, JSON otherwise;
    /// headed "Request failed".
    Edge,
}

impl Surface {
    /// Whether an error is answered in HTML, given whether the client prefers HTML.
    pub fn html(self, wants_html: bool) -> bool {
        match self {
            Surface::Api => false,
            Surface::Ui | Surface::LoginForm => true,
            Surface::SignIn | Surface::Edge => wants_html,
        }
    }

    /// The heading of an HTML error page.
    pub fn title(self) -> &'static str {
        match self {
            Surface::LoginForm | Surface::SignIn => "Sign-in failed",
            Surface::Api | Surface::Ui | Surface::Edge => "Request failed",
        }
    }

    /// Marks a response as this surface's (the first mark wins: the innermost route's).
    pub fn mark(self, mut response: Response) -> Response {
        if response.extensions().get::<Surface>().is_none() {
            response.extensions_mut().insert(self);
        }
        response
    }
}

/// An error response whose request id and representation are not attached yet: the edge
/// ([`super::finish_errors`]) renders it.
#[derive(Debug, Clone)]
pub(super) struct Unfinished(pub(super) ApiError);

impl ApiError {
    /// An error with a status and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            400 | 413 | 414 | 415 | 421 | 422 | 431 => "bad_request_error",
            401 => "auth_error",
            403 => "forbidden",
            404 => "not_found_error",
            409 => "conflict_error",
            408 => "timeout_error",
            429 => "rate_limit_error",
            503 | 504 => "service_unavailable",
            _ => "internal_server_error",
        };
        Self {
            status,
            kind,
            message: message.into(),
            request_id: None,
            page: None,
            link: None,
            redirect: None,
        }
    }

    /// Not an error page but a `303 See Other` to `location` (e.g. the sign-in page).
    pub fn redirect(location: String) -> Self {
        Self { redirect: Some(location.into()), ..Self::new(StatusCode::SEE_OTHER, "see other") }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401, with `WWW-Authenticate`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 503 for a database failure; the details go to the log only.
    pub fn database(error: &crate::db::Error) -> Self {
        tracing::error!("database error: {error}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again")
    }

    /// Tags the response with the request id, so a user can quote it. Handlers leave this to
    /// the edge; only answers made outside the router (the serve loop's) call it.
    pub fn with_request_id(mut self, request_id: &str) -> Self {
        self.request_id = Some(request_id.to_owned());
        self
    }

    /// Answers in HTML (for a browser). As [`Self::with_request_id`]: for the edge.
    pub fn as_html(mut self, html: bool) -> Self {
        self.page = html.then(|| Surface::Edge.title());
        self
    }

    /// Attaches what only the edge knows: the request id and how the client is answered.
    pub(super) fn finish(self, surface: Surface, request_id: &str, wants_html: bool) -> Self {
        let page = surface.html(wants_html).then(|| surface.title());
        Self { page, ..self.with_request_id(request_id) }
    }

    /// Adds a link to the HTML page (e.g. back to the sign-in page).
    pub fn with_link(mut self, href: String, text: &'static str) -> Self {
        self.link = Some(Box::new((href, text)));
        self
    }
}

impl From<crate::db::Error> for ApiError {
    /// Logged here, once; the client learns only that the database is unavailable (503).
    fn from(error: crate::db::Error) -> Self {
        ApiError::database(&error)
    }
}

impl From<SignInError> for ApiError {
    fn from(error: SignInError) -> Self {
        let error = match error {
            SignInError::FrontDoor(front_door) => return ApiError::from(front_door),
            other => other,
        };
        let status = match &error {
            SignInError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SignInError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            SignInError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            SignInError::Forbidden(_) => StatusCode::FORBIDDEN,
            SignInError::Conflict(_) => StatusCode::CONFLICT,
            SignInError::HookRefused { .. } => StatusCode::FORBIDDEN,
            SignInError::HookPanicked { .. } | SignInError::InvalidHookOutput(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            SignInError::Internal(detail) => {
                tracing::error!("internal error: {detail}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            SignInError::HookTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            SignInError::FrontDoor(_) => StatusCode::BAD_GATEWAY,
            SignInError::Upstream(_) => StatusCode::BAD_GATEWAY,
            SignInError::Busy | SignInError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<crate::access::AccessError> for ApiError {
    fn from(error: crate::access::AccessError) -> Self {
        use crate::access::AccessError;
        match error {
            AccessError::NotFound(message) => ApiError::not_found(message),
            AccessError::FrontDoor(error) => ApiError::from(error),
            AccessError::Database(error) => ApiError::database(&error),
        }
    }
}

impl From<FrontDoorError> for ApiError {
    /// The public side of a front-door error: what happened, never LiteLLM's internal URL, its
    /// answer or another user's id (those are logged here, with the request id the page shows).
    fn from(error: FrontDoorError) -> Self {
        if error.is_refusal() {
            tracing::warn!("front door refused: {error}");
            return ApiError::forbidden(
                "this account exists in the LiteLLM proxy but is not linked to your sign-in; ask \
                 an administrator",
            );
        }
        tracing::error!("front door failed: {error}");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the LiteLLM proxy could not complete this request; nothing was changed, try again \
             later (an administrator finds the details in hookgate's log under this request id)",
        )
    }
}

impl IntoResponse for ApiError {
    /// The answer as far as this error knows it; a response that passes the edge is rendered
    /// again there with the request id and the representation ([`Unfinished`]).
    fn into_response(self) -> Response {
        if let Some(location) = &self.redirect {
            return axum::response::Redirect::to(location).into_response();
        }
        let unfinished = self.request_id.is_none().then(|| Unfinished(self.clone()));
        let mut response = self.render();
        if let Some(unfinished) = unfinished {
            response.extensions_mut().insert(unfinished);
        }
        response
    }
}

impl ApiError {
    fn render(self) -> Response {
        let mut response = if let Some(heading) = self.page {
            let request_id = self
                .request_id
                .as_deref()
                .map(|id| {
                    format!("<p class=\"request-id\">Request id: <code>{}</code></p>", escape(id))
                })
                .unwrap_or_default();
            let title = self.status.canonical_reason().unwrap_or("Error");
            let link = self
                .link
                .as_ref()
                .map(|link| format!("<p><a href=\"{}\">{}</a></p>", escape(&link.0), link.1))
                .unwrap_or_default();
            Html(format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} — hookgate</title>\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
                 <body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem\">\
                 <h1>{heading}</h1><p>{}</p><p>{} {title}</p>{request_id}{link}</body></html>\n",
                escape(&self.message),
                self.status.as_u16(),
            ))
            .into_response()
        } else {
            axum::Json(json!({
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": null,
                    "code": self.status.as_u16().to_string(),
                },
                "request_id": self.request_id,
            }))
            .into_response()
        };
        *response.status_mut() = self.status;
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Escapes text for HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_database_error_is_a_503_that_hides_the_details() {
        let error = ApiError::from(crate::db::Error::Custom("secret table t_x is locked".into()));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.kind, "service_unavailable");
        assert!(!error.message.contains("t_x"), "{}", error.message);
    }

    #[test]
    fn each_surface_answers_in_its_representation_with_its_title() {
        assert!(!Surface::Api.html(true));
        assert!(Surface::Ui.html(false) && Surface::LoginForm.html(false));
        assert!(Surface::SignIn.html(true) && !Surface::SignIn.html(false));
        assert_eq!(Surface::Ui.title(), "Request failed");
        assert_eq!(Surface::SignIn.title(), "Sign-in failed");
        assert_eq!(Surface::LoginForm.title(), "Sign-in failed");
    }

    #[tokio::test]
    async fn an_unfinished_error_is_finished_once_with_the_request_id() {
        let response = ApiError::forbidden("no <way>").into_response();
        let Some(Unfinished(error)) = response.extensions().get::<Unfinished>().cloned() else {
            panic!("a handler's error waits for the edge");
        };
        let finished = error.finish(Surface::Ui, "req-7", false).into_response();
        assert!(finished.extensions().get::<Unfinished>().is_none());
        assert_eq!(finished.status(), StatusCode::FORBIDDEN);
        let html = body_text(finished).await;
        assert!(html.contains("<h1>Request failed</h1>"), "{html}");
        assert!(html.contains("<code>req-7</code>") && html.contains("no &lt;way&gt;"), "{html}");
    }
}
