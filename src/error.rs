//! The one error type of the service. Each variant maps to one HTTP status in `web::error`;
//! internal causes are logged there and never sent to a client.

use std::collections::BTreeMap;

/// Field name → why its value was refused.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be read at all (malformed JSON, wrong content type).
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// No credentials, or credentials that are not (or no longer) valid.
    #[error("authentication required")]
    Unauthenticated,
    /// Username and password do not match an active account; the same for an unknown user.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The caller's role may never take this action.
    #[error("forbidden")]
    Forbidden,
    /// Absent, or outside the caller's scope: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A conflict with the stored state, naming the field where there is one.
    #[error("conflict: {message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    /// Values that parse but are not acceptable; every offending field is named.
    #[error("invalid values")]
    Validation(FieldErrors),
    #[error("too many requests")]
    TooManyRequests { retry_after: i64 },
    /// The account uses TOTP and the login carried no code.
    #[error("a TOTP code is required")]
    TotpRequired,
    /// The role must enrol TOTP before doing anything else.
    #[error("TOTP enrolment required")]
    TotpEnrolmentRequired,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn field(field: impl Into<String>, why: impl Into<String>) -> Self {
        let mut m = FieldErrors::new();
        m.insert(field.into(), why.into());
        Error::Validation(m)
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Error::Conflict {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Error::Internal(anyhow::Error::new(e).context("decrypting"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while validating, then fails once with all of them.
#[derive(Default, Debug)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, why: impl Into<String>) {
        self.errors
            .entry(field.into())
            .or_insert_with(|| why.into());
    }

    /// Keep the value of `r`, or record its error under `field`.
    pub fn check<T>(&mut self, field: &str, r: std::result::Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(why) => {
                self.add(field, why);
                None
            }
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}
