//! The protocols every Infernet peer speaks, composed into one behaviour.

use std::time::Duration;

use libp2p::kad::store::MemoryStore;
use libp2p::request_response::{self, cbor, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, identity, kad, ping, StreamProtocol};
use wire::jobs::{JobRequest, JobResponse};

pub(crate) type JobCodec = cbor::codec::Codec<JobRequest, JobResponse>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) jobs: request_response::Behaviour<JobCodec>,
}

impl Behaviour {
    pub(crate) fn new(
        key: &identity::Keypair,
        agent_version: String,
        serve_jobs: bool,
        request_timeout: Duration,
    ) -> Self {
        let peer_id = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(wire::IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(agent_version),
        );
        let mut kad_config = kad::Config::new(StreamProtocol::new(wire::KAD_PROTOCOL));
        kad_config.set_query_timeout(Duration::from_secs(30));
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        // Every Infernet peer is meant to be reachable; AutoNAT (to decide
        // this per peer) comes with the reachability work.
        kad.set_mode(Some(kad::Mode::Server));

        let support = if serve_jobs {
            ProtocolSupport::Full
        } else {
            ProtocolSupport::Outbound
        };
        let codec = JobCodec::default()
            .set_request_size_maximum(wire::MAX_JOB_REQUEST_BYTES)
            .set_response_size_maximum(wire::MAX_JOB_RESPONSE_BYTES);
        let jobs = request_response::Behaviour::with_codec(
            codec,
            [(StreamProtocol::new(wire::JOB_PROTOCOL), support)],
            request_response::Config::default().with_request_timeout(request_timeout),
        );
        Behaviour {
            identify,
            ping: ping::Behaviour::default(),
            kad,
            jobs,
        }
    }
}
