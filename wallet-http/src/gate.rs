//! The permission gate: the one place a route's declared access is checked.
//!
//! The router puts the gate ([`guard`]) in front of every route whose
//! description names an access. Before the handler runs, the gate verifies
//! the bearer token (401), reads the ids of the path (400 when one is not a
//! UUID) and asks the core's permission table
//! ([`wallet_core::Actor::authorize`]) whether the caller may use the route
//! on the wallet of the `{userId}` it names (403). Nothing is loaded before that answer, so a caller who may not
//! see a wallet learns nothing about it, not even whether it exists, and
//! never sees a validation error about a body it may not send.
//!
//! One route names its user in the body instead of the path: creating a
//! wallet, where Service and Admin may name another user. The gate cannot
//! see that user, so it lets the caller through with the check still owed,
//! and [`Permitted::confirm`] makes it, with the same declared access, once
//! the handler has read the body and before the command runs.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use uuid::Uuid;
use wallet_core::{Access, Actor};

use crate::app::{AppState, Caller};
use crate::backend::Backend;
use crate::input::PathIds;
use crate::problem::Problem;
use crate::spec::{Owner, RouteSpec};

/// What the gate of one route knows: the state (for the token verifier) and
/// the route's declared access and owner.
pub struct Gate<S> {
    state: AppState<S>,
    access: Access,
    owner: Owner,
}

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Gate {
            state: self.state.clone(),
            access: self.access,
            owner: self.owner,
        }
    }
}

/// The caller, authenticated and let through the gate of the matched route.
#[derive(Debug, Clone)]
pub struct Permitted {
    actor: Actor,
    check: Check,
}

/// How far the gate got with the route's permission.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Checked against this user of the path, or against no user for the
    /// admin routes over every wallet.
    Done(Option<Uuid>),
    /// Still to check, with this access, against the user the command names.
    Owed(Access),
}

impl Permitted {
    /// The caller.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Finishes the check for the user the command acts on. For a route whose
    /// user is in its path the gate has already checked that user, and the
    /// command must act on that same one (anything else is refused as an
    /// internal fault, never let through); otherwise this is where the
    /// route's access is checked against the user named in the body.
    pub fn confirm(&self, user_id: Uuid) -> Result<(), Problem> {
        match self.check {
            Check::Done(Some(checked)) if checked == user_id => Ok(()),
            Check::Done(checked) => {
                tracing::error!(
                    checked = ?checked,
                    command_user = %user_id,
                    "a command acts on another user than the one its route was checked for"
                );
                Err(Problem::internal())
            }
            Check::Owed(access) => authorize(&self.actor, access, Some(user_id)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Permitted {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Permitted>().cloned().ok_or_else(|| {
            // The router puts the gate in front of every route that needs a
            // token, so a handler asking for the caller always finds one; a
            // route served without it must fail closed, not open.
            tracing::error!("a route that needs a token was served without its gate");
            Problem::internal()
        })
    }
}

/// Puts the gate of the route `spec` describes in front of its handler; a
/// route anyone may call (no declared access) is left as it is.
pub fn guard<S: Backend>(
    handler: MethodRouter<AppState<S>>,
    spec: &RouteSpec,
    state: &AppState<S>,
) -> MethodRouter<AppState<S>> {
    match spec.access {
        None => handler,
        Some(access) => {
            let gate = Gate {
                state: state.clone(),
                access,
                owner: spec.owner(),
            };
            // A route layer, so that a method the path does not serve is
            // still 405 without a token.
            handler.route_layer(middleware::from_fn_with_state(gate, pass::<S>))
        }
    }
}

fn authorize(actor: &Actor, access: Access, owner: Option<Uuid>) -> Result<(), Problem> {
    actor.authorize(access, owner).map_err(Problem::from)
}

impl<S: Backend> Gate<S> {
    /// Authenticates the caller and checks the route's access against the
    /// user the path names.
    async fn admit(&self, parts: &mut Parts) -> Result<Permitted, Problem> {
        let Caller(actor) = Caller::from_request_parts(parts, &self.state).await?;
        let ids = PathIds::from_request_parts(parts, &self.state).await?;
        let check = match self.owner {
            Owner::Path => Check::Done(Some(ids.user_id)),
            Owner::Nobody => Check::Done(None),
            Owner::Command => Check::Owed(self.access),
        };
        if let Check::Done(owner) = check {
            authorize(&actor, self.access, owner)?;
        }
        Ok(Permitted { actor, check })
    }
}

/// The middleware: lets a permitted caller through to the handler, with
/// [`Permitted`] in the request's extensions, and answers anyone else.
async fn pass<S: Backend>(State(gate): State<Gate<S>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match gate.admit(&mut parts).await {
        Ok(permitted) => {
            parts.extensions.insert(permitted);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::routes as r;

    fn permitted(user_id: Uuid, roles: &[&str], check: Check) -> Permitted {
        Permitted {
            actor: Actor {
                user_id,
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            },
            check,
        }
    }

    #[test]
    fn a_command_acts_only_on_the_user_its_route_was_checked_for() {
        let (me, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let checked = permitted(me, &[], Check::Done(Some(me)));
        assert!(checked.confirm(me).is_ok());
        let refused = checked.confirm(other).map_err(|p| p.status);
        assert_eq!(refused, Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR));
        let owed = permitted(me, &[], Check::Owed(Access::Create));
        assert!(owed.confirm(me).is_ok());
        let refused = owed.confirm(other).map_err(|p| p.status);
        assert_eq!(refused, Err(axum::http::StatusCode::FORBIDDEN));
        let service = permitted(me, &["Service"], Check::Owed(Access::Create));
        assert!(service.confirm(other).is_ok());
    }

    #[test]
    fn the_document_says_who_may_call_as_the_core_decides() {
        let everyone = "The owner (sub == userId), Service, Admin, SuperAdmin.";
        let services = "Service, Admin, SuperAdmin.";
        let admins = "Admin, SuperAdmin.";
        for (spec, expected) in [
            (r::get_wallet(), everyone),
            (r::create_wallet(), everyone),
            (r::withdraw(), everyone),
            (r::deposit(), services),
            (r::execute_hold(), services),
            (r::freeze(), admins),
            (r::list_wallets(), admins),
            (r::live(), "Anyone; no token needed."),
        ] {
            assert_eq!(spec.who(), expected, "{}", spec.operation_id);
        }
    }
}
