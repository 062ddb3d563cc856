//! One node's fleet link, from the moment it opens until it ends.

use std::time::Duration;

use p2p::fleet::FleetLink;
use tokio::sync::mpsc;
use wire::fleet::{CommandStatus, FleetEvent, NodeFrame, Outcome, ServerFrame};
use wire::{AccountId, NodeId, UnixMillis};

use super::Fleet;

/// Commands waiting to be written to one link.
const OUTBOX: usize = 64;
/// How long a new link may stay silent before its first telemetry.
const FIRST_FRAME: Duration = Duration::from_secs(30);
/// A link silent for this many telemetry intervals is taken as broken.
const SILENT_INTERVALS: u32 = 3;

pub(super) async fn serve(fleet: Fleet, link: FleetLink) {
    let node = NodeId::from(link.peer());
    // Only enrolled nodes have a fleet; the others' links are closed.
    let owner = match fleet.inner.enrolments.operator_of(node).await {
        Ok(Some(owner)) => owner,
        Ok(None) => {
            tracing::info!(%node, "fleet link from a node nobody enrolled; closed");
            let (_, writer) = link.split::<NodeFrame, ServerFrame>();
            writer.close().await;
            return;
        }
        Err(e) => {
            tracing::warn!(%node, error = %e, "could not look up a node's operator");
            return;
        }
    };
    let (mut reader, mut writer) = link.split::<NodeFrame, ServerFrame>();
    let (outbox, mut pending) = mpsc::channel::<ServerFrame>(OUTBOX);
    let id = fleet.connected(node, &owner, outbox);
    let writing = tokio::spawn(async move {
        while let Some(frame) = pending.recv().await {
            if let Err(e) = writer.send(&frame).await {
                tracing::info!(%node, error = %e, "could not write to a fleet link");
                break;
            }
        }
        writer.close().await;
    });
    // What waited for the node goes now, oldest first.
    match fleet.inner.store.queued_for(node).await {
        Ok(queued) => {
            for row in queued {
                match fleet.deliver(row).await {
                    Ok(row) => fleet.emit(&owner, FleetEvent::Command(Box::new(row.view()))),
                    Err(e) => tracing::warn!(%node, error = %e, "could not send a queued command"),
                }
            }
        }
        Err(e) => tracing::warn!(%node, error = %e, "could not read the queued commands"),
    }
    let mut patience = FIRST_FRAME;
    let reason = loop {
        let frame = match tokio::time::timeout(patience, reader.next()).await {
            Err(_) => break format!("silent for {} s", patience.as_secs()),
            Ok(Ok(None)) => break "the node closed its link".to_owned(),
            Ok(Err(e)) => break format!("the link broke: {e}"),
            Ok(Ok(Some(frame))) => frame,
        };
        match frame {
            NodeFrame::Telemetry(t) => {
                let interval = Duration::from_millis(u64::from(t.interval_ms.max(100)));
                patience = (interval * SILENT_INTERVALS).max(Duration::from_secs(2));
                fleet.telemetry_arrived(node, &owner, *t).await;
            }
            NodeFrame::Ack { id } => {
                fleet
                    .command_moved(node, &owner, &id, CommandStatus::Acked, None)
                    .await;
            }
            NodeFrame::Result { id, outcome } => {
                let (status, detail) = match outcome {
                    Outcome::Succeeded { detail } => (CommandStatus::Succeeded, detail),
                    Outcome::Failed { reason } => (CommandStatus::Failed, reason),
                };
                fleet
                    .command_moved(node, &owner, &id, status, Some(&detail))
                    .await;
            }
        }
    };
    writing.abort();
    fleet.disconnected(node, &owner, id, reason).await;
}

impl Fleet {
    /// A link opened: the node is online, and this link (a newer one
    /// replaces an older one) is where its commands go.
    fn connected(&self, node: NodeId, owner: &AccountId, outbox: mpsc::Sender<ServerFrame>) -> u64 {
        let id = self
            .inner
            .next_link
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = UnixMillis::now();
        {
            let mut live = self.live();
            let l = live.entry(node).or_default();
            l.link = Some((outbox, id));
            l.since = Some(now);
            l.owner = Some(owner.clone());
        }
        tracing::info!(%node, "fleet link open: node online");
        self.emit(
            owner,
            FleetEvent::Online {
                node_id: node,
                at: now,
            },
        );
        id
    }

    /// A link ended; the node is offline unless a newer link took over.
    async fn disconnected(&self, node: NodeId, owner: &AccountId, id: u64, reason: String) {
        let now = UnixMillis::now();
        let ours = {
            let mut live = self.live();
            match live.get_mut(&node) {
                Some(l) if l.link.as_ref().is_some_and(|(_, i)| *i == id) => {
                    l.link = None;
                    l.since = Some(now);
                    l.last_end = Some(reason.clone());
                    true
                }
                _ => false,
            }
        };
        if !ours {
            return;
        }
        tracing::info!(%node, %reason, "fleet link closed: node offline");
        if let Err(e) = self.inner.store.requeue_unacked(node).await {
            tracing::warn!(%node, error = %e, "could not queue a node's unacknowledged commands");
        }
        self.emit(
            owner,
            FleetEvent::Offline {
                node_id: node,
                at: now,
                reason,
            },
        );
    }

    async fn telemetry_arrived(&self, node: NodeId, owner: &AccountId, t: wire::fleet::Telemetry) {
        let now = UnixMillis::now();
        {
            let mut live = self.live();
            let l = live.entry(node).or_default();
            l.last_seen = Some(now);
            l.telemetry = Some(t.clone());
        }
        self.keep_gauges(node, now, wire::fleet::Gauges::of(&t))
            .await;
        self.emit(
            owner,
            FleetEvent::Telemetry {
                node_id: node,
                at: now,
                telemetry: Box::new(t),
            },
        );
    }

    /// The node acknowledged or finished a command.
    async fn command_moved(
        &self,
        node: NodeId,
        owner: &AccountId,
        id: &wire::fleet::CommandId,
        to: CommandStatus,
        detail: Option<&str>,
    ) {
        let from: &[CommandStatus] = match to {
            CommandStatus::Acked => &[CommandStatus::Sent, CommandStatus::Queued],
            _ => &[
                CommandStatus::Sent,
                CommandStatus::Acked,
                CommandStatus::Queued,
            ],
        };
        match self
            .inner
            .store
            .advance(node, id, from, to, UnixMillis::now(), detail)
            .await
        {
            Ok(Some(row)) => self.emit(owner, FleetEvent::Command(Box::new(row.view()))),
            Ok(_) => tracing::debug!(command = %id, "an answer for no command of this node's"),
            Err(e) => {
                tracing::warn!(command = %id, error = %e, "could not record a command's answer")
            }
        }
    }
}
