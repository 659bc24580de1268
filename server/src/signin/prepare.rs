//! Everything a sign-in does before it writes: the header hook, the identity's checks (and the
//! role its groups map to), the snapshot read and the `custom_sso` hook (or LiteLLM's defaults),
//! ending in a [`Prepared`].
//!
//! Hooks may block, so they run on the runner's blocking threads; each hand-over to such a thread
//! and back costs two thread switches. A header sign-in with a `custom_sso` hook makes one: the
//! header hook, the identity's checks (pure), the snapshot read and `custom_sso` run in one
//! blocking task ([`SignInService::header_sign_in`]). Its deadline is the two hooks'
//! (`hook_timeout` each), and a hook that returns after its own `hook_timeout` is answered as
//! timed out all the same, with nothing after it run and nothing it staged applied.
//!
//! Hooks their plugin declared non-blocking make none: they run on the worker serving the
//! request, and the snapshot read between them is awaited there
//! ([`SignInService::hooks_run_here`]).

use std::{sync::Arc, time::Duration};

use crate::db::Error as DbErr;
use hookgate_core::{
    identity::{Checked, IdentityProblem, check_identity, with_mapped_role},
    signin::{self as rules, Keys, Snapshot, Staged},
    values::{self, Values, check_values},
};
use plugin_api::{HookError, HookErrorKind, OpenId, SsoUserDefinedValues};
use tokio::runtime::Handle;

use super::{Attempt, Proof, RunError, SignInError, SignInService, SignedIn, host::SignInHost};
use crate::{
    config::Config,
    db::Db,
    metrics::{Hook, Metrics},
    plugins::{CustomSso, HookRequest, Plugins, SignInHandler, UnfitRequest},
};

/// How long each hook of one sign-in ran (on its blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct HookTimes {
    /// `custom_ui_sso_sign_in_handler`.
    pub sign_in_handler: Option<Duration>,
    /// `custom_sso`.
    pub custom_sso: Option<Duration>,
}

/// What the pipeline settled before it writes: the identity as normalised, the values to apply
/// and the writes the `custom_sso` hook staged.
pub(super) struct Prepared {
    pub(super) openid: OpenId,
    pub(super) proof: Proof,
    pub(super) idp_id: Option<String>,
    pub(super) values: Values,
    pub(super) staged: Vec<Staged>,
    /// The read made for the hook, which usually serves the decision too.
    pub(super) read_before: Option<ReadBefore>,
}

/// The snapshot read for the `custom_sso` hook (shared with the hook's host while it runs),
/// and whether it was remembered.
pub(super) struct ReadBefore {
    pub(super) read: Arc<(Keys, Snapshot)>,
    pub(super) remembered: Option<crate::db::Remembered>,
}

impl ReadBefore {
    /// The read `keys` named, to be shared with the hook's host.
    fn new(keys: Keys, read: crate::db::SignInRead) -> ReadBefore {
        ReadBefore { read: Arc::new((keys, read.snapshot)), remembered: read.remembered }
    }
}

impl Prepared {
    pub(super) fn input(&self) -> rules::Input<'_> {
        rules::Input {
            openid: &self.openid,
            proof: &self.proof,
            idp_id: self.idp_id.as_deref(),
            values: &self.values,
            staged: &self.staged,
        }
    }
}

/// What preparing failed with, and the user it concerns when known.
pub(super) type PrepareError = (Option<String>, SignInError);

/// A `custom_sso` call, made on a blocking thread over a snapshot read there.
struct CustomSsoRun {
    result: Result<SsoUserDefinedValues, HookError>,
    staged: Vec<Staged>,
    /// Whether one of the hook's host calls failed on the database.
    database_failed: bool,
    read: ReadBefore,
    took: Duration,
}

/// On a blocking thread: the snapshot the identity's keys name, then the `custom_sso` hook over
/// a host that answers from it.
fn run_custom_sso(
    db: Db,
    runtime: Handle,
    hook: &CustomSso,
    identity: &OpenId,
    keys: Keys,
    metrics: &Metrics,
) -> Result<CustomSsoRun, DbErr> {
    let read = db.snapshot_blocking(&runtime, &keys)?;
    let read = ReadBefore::new(keys, read);
    Ok(call_custom_sso(db, runtime, false, hook, identity, read, metrics))
}

/// The `custom_sso` hook over a host that answers from `read` (`on_worker`: called on a runtime
/// worker, the hook declared non-blocking).
fn call_custom_sso(
    db: Db,
    runtime: Handle,
    on_worker: bool,
    hook: &CustomSso,
    identity: &OpenId,
    read: ReadBefore,
    metrics: &Metrics,
) -> CustomSsoRun {
    let reference = hook.info().reference.clone();
    let host = SignInHost::new(db, runtime, on_worker, reference, read.read.clone());
    let (result, took) = metrics.time_hook(Hook::CustomSso, || hook.call(&host, identity));
    let (staged, database_failed) = host.into_staged();
    CustomSsoRun { result, staged, database_failed, read, took }
}

/// The header hook and the identity's checks, as a header sign-in with both hooks makes them:
/// the checked identity and the keys of its snapshot, or how it ended.
fn header_part(
    handler: &SignInHandler,
    request: &HookRequest,
    config: &Config,
    metrics: &Metrics,
    timeout: Duration,
) -> Result<(Checked, Proof, Keys), Ended> {
    let (header, took) =
        metrics.time_hook(Hook::SignInHandler, || request.with_view(|view| handler.call(view)));
    let openid = match header {
        Err(error) => return Err(Ended::Header(Ok(error))),
        Ok(_) if took > timeout => return Err(Ended::Header(Err(RunError::Timeout))),
        Ok(openid) => openid,
    };
    let proof = Proof::of_header_identity(&openid);
    let user_hint = user_hint(&openid);
    let checked = match check_identity(openid, &proof, &config.allowed_email_domains) {
        Ok(checked) => with_mapped_role(checked, config.role_map.as_ref(), &proof),
        Err(problem) => return Err(Ended::Problem { user_hint, problem }),
    };
    let keys = rules::identity_keys(&checked.openid, &proof, &config.policy());
    Ok((checked, proof, keys))
}

/// How a header sign-in with both hooks ended before `custom_sso`.
enum Ended {
    /// The header hook returned, but too late or with an error; nothing after it ran.
    Header(Result<HookError, RunError>),
    /// The identity failed its checks; `custom_sso` did not run.
    Problem { user_hint: Option<String>, problem: IdentityProblem },
}

/// What a header sign-in's hooks did (both hooks configured). Returned once per sign-in, by
/// value: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum HeaderRun {
    /// It ended before `custom_sso`.
    Ended(Ended),
    /// Both hooks ran.
    Ran {
        checked: Checked,
        proof: Proof,
        custom_sso: Result<Result<CustomSsoRun, DbErr>, RunError>,
    },
}

fn user_hint(openid: &OpenId) -> Option<String> {
    openid.id.clone().or_else(|| openid.email.clone())
}

impl SignInService {
    /// Header sign-in: the trusted-proxy rule, then the header hook, then the pipeline. With a
    /// `custom_sso` hook as well, the header hook, the identity's checks, the snapshot read and
    /// `custom_sso` run in one blocking task (module docs).
    pub async fn header_sign_in(
        &self,
        attempt: &Attempt,
        request: Result<HookRequest, UnfitRequest>,
    ) -> Result<SignedIn, SignInError> {
        // One set of hooks for the whole sign-in, whatever a reload does meanwhile.
        let hooks = self.plugins.current();
        let (handler, request) = match self.header_request(&hooks, attempt, request) {
            Ok(checked) => checked,
            Err(error) => {
                self.record_refusal(attempt, &error).await;
                return Err(error);
            }
        };
        let Some(custom_sso) = hooks.custom_sso.clone() else {
            return match self
                .call_sign_in_handler(handler, request, &mut HookTimes::default())
                .await
            {
                Ok(openid) => {
                    let proof = Proof::of_header_identity(&openid);
                    self.complete_with(&hooks, attempt, openid, proof).await
                }
                Err(error) => {
                    self.record_refusal(attempt, &error).await;
                    Err(error)
                }
            };
        };
        let run = if self.hooks_run_here(Some(&handler), Some(&custom_sso)) {
            self.header_run_here(&handler, &request, &custom_sso).await
        } else {
            let timeout = self.runner.timeout();
            let (config, db, metrics) =
                (self.config.clone(), self.db.clone(), self.metrics.clone());
            let runtime = Handle::current();
            self.runner
                .run_hooks(2, move || {
                    let (checked, proof, keys) =
                        match header_part(&handler, &request, &config, &metrics, timeout) {
                            Ok(checked) => checked,
                            Err(ended) => return HeaderRun::Ended(ended),
                        };
                    let identity = &checked.openid;
                    let custom_sso =
                        match run_custom_sso(db, runtime, &custom_sso, identity, keys, &metrics) {
                            Ok(run) if run.took > timeout => Err(RunError::Timeout),
                            outcome => Ok(outcome),
                        };
                    HeaderRun::Ran { checked, proof, custom_sso }
                })
                .await
        };
        let header_failed = |outcome: Result<HookError, RunError>| {
            let outcome = outcome.map(Err::<OpenId, _>);
            self.hook_result("custom_ui_sso_sign_in_handler", outcome)
                .err()
                .unwrap_or_else(|| SignInError::Internal("the header hook failed".into()))
        };
        match run {
            Err(error) | Ok(HeaderRun::Ended(Ended::Header(Err(error)))) => {
                let error = header_failed(Err(error));
                self.record_refusal(attempt, &error).await;
                Err(error)
            }
            Ok(HeaderRun::Ended(Ended::Header(Ok(hook_error)))) => {
                let error = header_failed(Ok(hook_error));
                self.record_refusal(attempt, &error).await;
                Err(error)
            }
            Ok(HeaderRun::Ended(Ended::Problem { user_hint, problem })) => {
                self.finish(attempt, user_hint, Err((None, problem.into()))).await
            }
            Ok(HeaderRun::Ran { checked, proof, custom_sso }) => {
                let user_hint = user_hint(&checked.openid);
                let prepared = self.finish_prepare(
                    checked,
                    proof,
                    Some(custom_sso),
                    &mut HookTimes::default(),
                );
                self.finish(attempt, user_hint, prepared).await
            }
        }
    }

    /// Whether these hooks (those given) run here, on the runtime's worker serving the request,
    /// rather than on a blocking thread: each was declared non-blocking, and, with a
    /// `custom_sso` hook, the runtime's workers may block in place (multi-threaded: for the rare
    /// host call the snapshot does not answer).
    fn hooks_run_here(
        &self,
        handler: Option<&SignInHandler>,
        custom_sso: Option<&CustomSso>,
    ) -> bool {
        if handler.is_some_and(|handler| !handler.info().non_blocking) {
            return false;
        }
        match custom_sso {
            None => true,
            Some(hook) => {
                hook.info().non_blocking
                    && Handle::current().runtime_flavor()
                        == tokio::runtime::RuntimeFlavor::MultiThread
            }
        }
    }

    /// A header sign-in with both hooks, here ([`SignInService::hooks_run_here`]): the header
    /// hook and the checks, then the snapshot read (awaited: on PostgreSQL a round trip that
    /// holds no thread), then `custom_sso`.
    async fn header_run_here(
        &self,
        handler: &SignInHandler,
        request: &HookRequest,
        custom_sso: &CustomSso,
    ) -> Result<HeaderRun, RunError> {
        let timeout = self.runner.timeout();
        let header = self
            .runner
            .run_here(1, || header_part(handler, request, &self.config, &self.metrics, timeout))?;
        let (checked, proof, keys) = match header {
            Ok(checked) => checked,
            Err(ended) => return Ok(HeaderRun::Ended(ended)),
        };
        let custom_sso = self.custom_sso_here(custom_sso, &checked.openid, keys).await;
        Ok(HeaderRun::Ran { checked, proof, custom_sso })
    }

    /// The snapshot read (awaited), then the `custom_sso` hook here, on the worker.
    async fn custom_sso_here(
        &self,
        hook: &CustomSso,
        identity: &OpenId,
        keys: Keys,
    ) -> Result<Result<CustomSsoRun, DbErr>, RunError> {
        let read = match self.db.snapshot(&keys).await {
            Ok(read) => ReadBefore::new(keys, read),
            Err(error) => return Ok(Err(error)),
        };
        let (db, runtime) = (self.db.clone(), Handle::current());
        // `run_here` answers a hook that returned after its timeout as timed out.
        let run = self.runner.run_here(1, || {
            call_custom_sso(db, runtime, true, hook, identity, read, &self.metrics)
        })?;
        Ok(Ok(run))
    }

    /// The header sign-in's checks before any hook runs: a handler is configured, the peer is a
    /// trusted proxy (an untrusted one learns nothing about its headers), the request fits.
    fn header_request(
        &self,
        hooks: &Plugins,
        attempt: &Attempt,
        request: Result<HookRequest, UnfitRequest>,
    ) -> Result<(SignInHandler, HookRequest), SignInError> {
        let Some(handler) = hooks.sign_in_handler.clone() else {
            return Err(SignInError::Internal("no sign-in handler is configured".into()));
        };
        let peer = attempt.peer.to_canonical();
        if !self.config.is_trusted_proxy(&peer) {
            return Err(SignInError::Forbidden(format!(
                "header sign-in is only accepted from the OAuth proxy: {peer} is not in \
                 general_settings.trusted_proxy_ranges"
            )));
        }
        let request = request.map_err(|unfit| match unfit {
            UnfitRequest::TooLarge { .. } => SignInError::HeadersTooLarge(unfit.to_string()),
            UnfitRequest::NotUtf8(_) => SignInError::BadRequest(unfit.to_string()),
        })?;
        Ok((handler, request))
    }

    /// Runs the header hook on the request, on a blocking thread of its own (here if the plugin
    /// declared it non-blocking).
    pub(super) async fn call_sign_in_handler(
        &self,
        handler: SignInHandler,
        request: HookRequest,
        times: &mut HookTimes,
    ) -> Result<OpenId, SignInError> {
        let metrics = self.metrics.clone();
        let here = self.hooks_run_here(Some(&handler), None);
        let call = move || {
            metrics.time_hook(Hook::SignInHandler, || request.with_view(|view| handler.call(view)))
        };
        let outcome =
            if here { self.runner.run_here(1, call) } else { self.runner.run(call).await };
        let outcome = outcome.map(|(result, took)| {
            times.sign_in_handler = Some(took);
            result
        });
        self.hook_result("custom_ui_sso_sign_in_handler", outcome)
    }

    /// A hook's outcome as the sign-in sees it: its value, or the error the user gets (a panic
    /// or timeout logged, a refusal's message logged sampled).
    fn hook_result<T>(
        &self,
        setting: &'static str,
        outcome: Result<Result<T, HookError>, RunError>,
    ) -> Result<T, SignInError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if error.kind() == HookErrorKind::Panicked => {
                tracing::error!(setting, "hook {}", error);
                Err(SignInError::HookPanicked { setting, detail: error.message().to_owned() })
            }
            Ok(Err(error)) => {
                self.refusals.log_hook_refusal(setting, error.message());
                Err(SignInError::HookRefused { setting, message: error.message().to_owned() })
            }
            Err(RunError::Timeout) => {
                tracing::error!(setting, timeout = ?self.runner.timeout(), "hook timed out");
                Err(SignInError::HookTimeout(self.runner.timeout()))
            }
            Err(RunError::Busy) => Err(SignInError::Busy),
            Err(RunError::Crashed(detail)) => Err(SignInError::Internal(detail)),
        }
    }

    /// The common pipeline: from an identity to a session, recording the attempt either way.
    pub async fn complete(
        &self,
        attempt: &Attempt,
        openid: OpenId,
        proof: Proof,
    ) -> Result<SignedIn, SignInError> {
        self.complete_with(&self.plugins.current(), attempt, openid, proof).await
    }

    pub(super) async fn complete_with(
        &self,
        hooks: &Plugins,
        attempt: &Attempt,
        openid: OpenId,
        proof: Proof,
    ) -> Result<SignedIn, SignInError> {
        let user_hint = user_hint(&openid);
        let prepared = self.prepare(hooks, openid, proof, &mut HookTimes::default()).await;
        self.finish(attempt, user_hint, prepared).await
    }

    /// Everything before the write: the identity's checks, then the `custom_sso` hook (over a
    /// read made on its thread) or LiteLLM's defaults. On failure, the user it concerns if known.
    pub(super) async fn prepare(
        &self,
        hooks: &Plugins,
        openid: OpenId,
        proof: Proof,
        times: &mut HookTimes,
    ) -> Result<Prepared, PrepareError> {
        let checked = check_identity(openid, &proof, &self.config.allowed_email_domains)
            .map(|checked| with_mapped_role(checked, self.config.role_map.as_ref(), &proof))
            .map_err(|problem| (None, problem.into()))?;
        let custom_sso = match hooks.custom_sso.clone() {
            None => None,
            Some(hook) => {
                // One read for the hook's questions and, usually, the decision after it, made
                // on the hook's thread (or awaited here, before a hook declared non-blocking).
                let keys = rules::identity_keys(&checked.openid, &proof, &self.config.policy());
                if self.hooks_run_here(None, Some(&hook)) {
                    Some(self.custom_sso_here(&hook, &checked.openid, keys).await)
                } else {
                    let (db, metrics) = (self.db.clone(), self.metrics.clone());
                    let (runtime, identity) = (Handle::current(), checked.openid.clone());
                    let run = move || run_custom_sso(db, runtime, &hook, &identity, keys, &metrics);
                    Some(self.runner.run(run).await)
                }
            }
        };
        self.finish_prepare(checked, proof, custom_sso, times)
    }

    /// From a checked identity and the `custom_sso` hook's run (none without the hook) to the
    /// values the sign-in applies.
    fn finish_prepare(
        &self,
        checked: Checked,
        proof: Proof,
        custom_sso: Option<Result<Result<CustomSsoRun, DbErr>, RunError>>,
        times: &mut HookTimes,
    ) -> Result<Prepared, PrepareError> {
        let no_user = |error| (None, error);
        let (values, staged, read_before) = match custom_sso {
            None => {
                let values = values::defaults(&checked, &self.config.policy().new_users)
                    .map_err(|problem| no_user(problem.into()))?;
                (values, Vec::new(), None)
            }
            Some(outcome) => {
                let (outcome, staged, read) = match outcome {
                    Ok(Err(error)) => return Err(no_user(SignInError::Database(error))),
                    Ok(Ok(run)) => {
                        times.custom_sso = Some(run.took);
                        if run.database_failed && run.result.is_err() {
                            return Err(no_user(SignInError::Database(DbErr::Custom(
                                "a custom_sso host call failed on the database".into(),
                            ))));
                        }
                        (Ok(run.result), run.staged, Some(run.read))
                    }
                    Err(error) => (Err(error), Vec::new(), None),
                };
                let values = self.hook_result("custom_sso", outcome).map_err(no_user)?;
                let values = check_values(values).map_err(|invalid| no_user(invalid.into()))?;
                (values, staged, read)
            }
        };
        let Checked { openid, idp_id, .. } = checked;
        Ok(Prepared { openid, proof, idp_id, values, staged, read_before })
    }

    /// Writes a prepared sign-in ([`Self::write_sign_in`]); a failure anywhere is recorded as
    /// the attempt's event, for the user it concerns (else `user_hint`, the identity's id or
    /// email).
    pub(super) async fn finish(
        &self,
        attempt: &Attempt,
        user_hint: Option<String>,
        prepared: Result<Prepared, PrepareError>,
    ) -> Result<SignedIn, SignInError> {
        let outcome = match prepared {
            Err(failed) => Err(failed),
            Ok(mut prepared) => {
                let who = Some(prepared.values.user_id.clone());
                // Taken, not cloned: the write unwraps the only reference instead of copying
                // the read.
                let read_before = prepared.read_before.take();
                self.write_sign_in(attempt, &prepared.input(), read_before)
                    .await
                    .map_err(|error| (who, error))
            }
        };
        match outcome {
            Ok(signed_in) => Ok(signed_in),
            Err((user_id, error)) => {
                let user_id = user_id.or(user_hint);
                if let SignInError::Database(db_error) = &error {
                    tracing::error!("sign-in failed on the database: {db_error}");
                }
                self.record_event(attempt, user_id, &error).await;
                Err(error)
            }
        }
    }
}
