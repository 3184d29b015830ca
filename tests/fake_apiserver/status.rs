//! `metav1.Status` bodies as the API server writes them: the constructors mirror
//! k8s.io/apimachinery/pkg/api/errors (NewForbidden, NewNotFound, NewBadRequest,
//! NewInternalError, NewResourceExpired, ...) and the field order follows the Go struct.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: serde_json::Map<String, Value>,
    pub status: Outcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Details>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

/// `status`: Success or Failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero")]
    pub retry_after_seconds: u16,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cause {
    #[serde(rename = "reason", skip_serializing_if = "str::is_empty")]
    pub cause_type: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl Status {
    fn failure(code: u16, reason: &'static str, message: impl Into<String>, details: Option<Details>) -> Status {
        let details = details.map(Box::new);
        Status {
            kind: Some("Status"),
            api_version: Some("v1"),
            metadata: serde_json::Map::new(),
            status: Outcome::Failure,
            message: message.into(),
            reason,
            details,
            code,
        }
    }

    /// The body of an HTTP error response.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// As written on the exec status channel: `json.Marshal(status.Status())` of a StatusError
    /// built without TypeMeta, so no `kind` and `apiVersion`.
    pub fn on_status_channel(mut self) -> Status {
        self.kind = None;
        self.api_version = None;
        self
    }

    pub fn success() -> Status {
        Status {
            kind: None,
            api_version: None,
            metadata: serde_json::Map::new(),
            status: Outcome::Success,
            message: String::new(),
            reason: "",
            details: None,
            code: 0,
        }
    }

    /// `NewForbidden(resource, name, err)` with the RBAC authorizer's message
    /// (apiserver/pkg/endpoints/handlers/responsewriters/errors.go, forbiddenMessage).
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Status {
        let full = match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let why = match namespace {
            Some(ns) => {
                format!("User {user:?} cannot {verb} resource {full:?} in API group \"\" in the namespace {ns:?}")
            }
            None => format!("User {user:?} cannot {verb} resource {full:?} in API group \"\" at the cluster scope"),
        };
        let message = match name {
            Some(name) => format!("{resource} {name:?} is forbidden: {why}"),
            None => format!("{resource} is forbidden: {why}"),
        };
        let details = Details { name: name.unwrap_or_default().into(), kind: resource.into(), ..Details::default() };
        Status::failure(403, "Forbidden", message, Some(details))
    }

    pub fn not_found(resource: &str, name: &str) -> Status {
        let details = Details { name: name.into(), kind: resource.into(), ..Details::default() };
        Status::failure(404, "NotFound", format!("{resource} {name:?} not found"), Some(details))
    }

    /// A path the server does not serve.
    pub fn no_route() -> Status {
        Status::failure(404, "NotFound", "the server could not find the requested resource", Some(Details::default()))
    }

    pub fn method_not_allowed() -> Status {
        Status::failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(Details::default()),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message, None)
    }

    pub fn unauthorized() -> Status {
        Status::failure(401, "Unauthorized", "Unauthorized", None)
    }

    pub fn internal_error(cause: impl Into<String>) -> Status {
        let cause = cause.into();
        let details = Details { causes: vec![Cause { cause_type: "", message: cause.clone() }], ..Details::default() };
        Status::failure(500, "InternalError", format!("Internal error occurred: {cause}"), Some(details))
    }

    /// The etcd3 store's answer to a continue token from a compacted revision
    /// (apiserver/pkg/storage/etcd3/store.go, handleCompactedErrorForPaging): it carries a
    /// token that continues, inconsistently, at the latest revision.
    pub fn continue_expired(new_token: &str) -> Status {
        let mut status = Status::failure(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list \
             without the continue parameter, or use the continue token in this response to retrieve the remainder of \
             the results. Continuing with the provided token results in an inconsistent list - objects that were \
             created, modified, or deleted between the time the first chunk was returned and now may show up in the \
             list.",
            None,
        );
        status.metadata.insert("continue".into(), Value::String(new_token.into()));
        status
    }

    /// The exec status for a command that exited non-zero, as the container runtime
    /// (containerd's CodeExitError) and kubelet's ServeExec / the stream translator write it.
    pub fn non_zero_exit(command: &[String], code: i32) -> Status {
        let details =
            Details { causes: vec![Cause { cause_type: "ExitCode", message: code.to_string() }], ..Details::default() };
        let message = format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        );
        Status::failure(0, "NonZeroExitCode", message, Some(details)).on_status_channel()
    }

    /// A scripted failure with the status code `code`, shaped like the API server's own answer
    /// for that code (max-in-flight 429, timeout filter 504, ...).
    pub fn scripted(code: u16) -> Status {
        match code {
            400 => Status::bad_request("fake apiserver: scripted bad request"),
            401 => Status::unauthorized(),
            403 => Status::failure(403, "Forbidden", "forbidden: fake apiserver: scripted", Some(Details::default())),
            404 => Status::no_route(),
            409 => Status::failure(409, "Conflict", "fake apiserver: scripted conflict", None),
            410 => Status::failure(410, "Expired", "fake apiserver: scripted expiry", None),
            429 => Status::failure(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                Some(Details { retry_after_seconds: 1, ..Details::default() }),
            ),
            500 => Status::internal_error("fake apiserver: scripted failure"),
            503 => {
                Status::failure(503, "ServiceUnavailable", "the server is currently unable to handle the request", None)
            }
            504 => Status::failure(
                504,
                "Timeout",
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
                Some(Details { retry_after_seconds: 0, ..Details::default() }),
            ),
            other => Status::failure(other, "", "the server has received an unknown error", None),
        }
    }
}
