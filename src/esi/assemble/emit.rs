//! Sending parts in document order as they become ready: to the client,
//! or into an `esi:attempt` that is delivered only when none of its
//! includes failed. One walk serves both; the [`Sink`] says where the bytes
//! go and what a failed include does.

use tokio::sync::mpsc;

use super::budget::{Piece, Turn};
use super::fetch::{Chunks, FragmentResult};
use super::plan::{plan, Part};
use super::{Aborted, FragmentSource, OnError, Shared, StreamError};
use std::sync::Arc;

/// Where parts go.
pub(super) enum Sink<'a> {
    /// To the client connection; a failed include does what the settings
    /// say ([`OnError`]).
    Client(&'a mpsc::Sender<Result<Piece, StreamError>>),
    /// Into an `esi:attempt`, held until it is complete; a failed include
    /// fails the attempt.
    Attempt(Chunks),
}

/// Why the output stopped.
pub(super) enum Stop {
    /// The client left, or delivery was aborted.
    Client,
    /// An include of an `esi:attempt` failed (the `esi:except` branch goes
    /// out instead).
    Attempt,
}

impl Sink<'_> {
    async fn put(&mut self, p: Piece) -> Result<(), Stop> {
        if p.bytes.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Client(tx) => tx.send(Ok(p)).await.map_err(|_| Stop::Client),
            Sink::Attempt(out) => {
                out.push(p);
                Ok(())
            }
        }
    }

    async fn put_all(&mut self, chunks: Chunks) -> Result<(), Stop> {
        for c in chunks {
            self.put(c).await?;
        }
        Ok(())
    }

    /// An include failed: nothing with `onerror="continue"`; else the
    /// attempt fails, or the settings decide (insert its error body, or
    /// abort).
    async fn failed(
        &mut self,
        on_error: OnError,
        continue_on_error: bool,
        error_body: Chunks,
    ) -> Result<(), Stop> {
        if continue_on_error {
            return Ok(());
        }
        match (&*self, on_error) {
            (Sink::Attempt(_), _) => Err(Stop::Attempt),
            (Sink::Client(_), OnError::Include) => self.put_all(error_body).await,
            (Sink::Client(tx), OnError::Abort) => {
                let _ = tx.send(Err(Box::new(Aborted))).await;
                Err(Stop::Client)
            }
        }
    }
}

/// Sends `parts` in order into `sink`, each as soon as it is ready.
pub(super) async fn emit<S: FragmentSource>(
    shared: &Arc<Shared<S>>,
    parts: Vec<Part>,
    sink: &mut Sink<'_>,
) -> Result<(), Stop> {
    let on_error = shared.settings.on_error;
    for part in parts {
        match part {
            Part::Ready(b) => sink.put(Piece::free(b)).await?,
            Part::Failed { continue_on_error } => {
                sink.failed(on_error, continue_on_error, Vec::new()).await?
            }
            Part::Fragment {
                task,
                continue_on_error,
                turn,
            } => match its_turn(task, &turn).await {
                Ok(chunks) => sink.put_all(chunks).await?,
                Err(error_body) => sink.failed(on_error, continue_on_error, error_body).await?,
            },
            Part::Try {
                attempt,
                except,
                page,
            } => {
                let mut held = Sink::Attempt(Vec::new());
                match Box::pin(emit(shared, attempt, &mut held)).await {
                    Ok(()) => {
                        if let Sink::Attempt(chunks) = held {
                            sink.put_all(chunks).await?;
                        }
                    }
                    Err(Stop::Attempt) => {
                        let mut parts = Vec::new();
                        plan(shared, &page, &except, &mut parts);
                        Box::pin(emit(shared, parts, sink)).await?;
                    }
                    Err(Stop::Client) => return Err(Stop::Client),
                }
            }
        }
    }
    Ok(())
}

/// The result of an include the output has reached: from now on it waits
/// for nothing but its own fetch.
async fn its_turn(task: tokio::task::JoinHandle<FragmentResult>, turn: &Turn) -> FragmentResult {
    turn.start();
    task.await.unwrap_or(Err(Vec::new()))
}
