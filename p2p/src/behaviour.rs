//! The protocols every Infernet peer speaks, composed into one behaviour.
//! All but the job and ad streams are libp2p's standard protocols with their
//! standard ids, so other libp2p implementations can connect, identify,
//! ping, use the DHT, relay and hole-punch with us.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{autonat, dcutr, gossipsub, identify, identity, kad, ping, relay, StreamProtocol};

use crate::Config;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// Only when reachability is to be found out (`Reachability::Auto`).
    pub(crate) autonat_client: Toggle<autonat::v2::client::Behaviour>,
    pub(crate) autonat_server: autonat::v2::server::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    /// The job and ad protocols, driven through `libp2p_stream::Control`.
    pub(crate) streams: libp2p_stream::Behaviour,
}

/// How long a provider record lives in the DHT, and how often it is renewed.
pub(crate) const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(10 * 60);
pub(crate) const PROVIDER_REPUBLISH: Duration = Duration::from_secs(4 * 60);

impl Behaviour {
    pub(crate) fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        config: &Config,
    ) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(wire::IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(config.agent_version.clone())
                .with_cache_size(1024),
        );

        let mut kad_config = kad::Config::new(StreamProtocol::new(wire::KAD_PROTOCOL));
        kad_config
            .set_query_timeout(Duration::from_secs(30))
            .set_provider_record_ttl(Some(PROVIDER_RECORD_TTL))
            .set_provider_publication_interval(Some(PROVIDER_REPUBLISH));
        let store_config = MemoryStoreConfig {
            max_provided_keys: 4096,
            max_providers_per_key: 1024,
            ..MemoryStoreConfig::default()
        };
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            MemoryStore::with_config(peer_id, store_config),
            kad_config,
        );
        // A peer known to be reachable serves the DHT from the start; others
        // let Kademlia switch to server mode once an external address is
        // confirmed (by AutoNAT, or a relay reservation).
        match config.reachability {
            crate::Reachability::Public => kad.set_mode(Some(kad::Mode::Server)),
            crate::Reachability::Client => kad.set_mode(Some(kad::Mode::Client)),
            crate::Reachability::Auto | crate::Reachability::Private => {}
        }

        let gossipsub_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
            .validation_mode(gossipsub::ValidationMode::Strict)
            // We check every ad before gossipsub passes it on.
            .validate_messages()
            .max_transmit_size(wire::ads::MAX_AD_BYTES + 1024)
            .build()
            .map_err(|e| e.to_string())?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub_config,
        )
        .map_err(str::to_owned)?;

        let relay_server = config.relay_server.then(|| {
            let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
            let mut relay_config = relay::Config {
                max_reservations: 1024,
                max_reservations_per_peer: 4,
                reservation_duration: Duration::from_secs(60 * 60),
                max_circuits: 256,
                max_circuits_per_peer: 16,
                // Jobs run through circuits until hole punching upgrades
                // them, so a circuit must carry a job's input and output.
                max_circuit_duration: Duration::from_secs(10 * 60),
                max_circuit_bytes: 2 * wire::MAX_JOB_RESPONSE_BYTES,
                ..relay::Config::default()
            };
            // The defaults also limit per IP address, which would throttle
            // every peer behind one NAT (or on one test machine) together.
            relay_config.reservation_rate_limiters.clear();
            relay_config.circuit_src_rate_limiters.clear();
            let relay_config = relay_config
                .reservation_rate_per_peer(n(60), Duration::from_secs(60))
                .circuit_src_per_peer(n(600), Duration::from_secs(60));
            relay::Behaviour::new(peer_id, relay_config)
        });

        Ok(Behaviour {
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(5))),
            kad,
            gossipsub,
            autonat_client: Toggle::from(
                (config.reachability == crate::Reachability::Auto)
                    .then(autonat::v2::client::Behaviour::default),
            ),
            autonat_server: autonat::v2::server::Behaviour::default(),
            relay_server: Toggle::from(relay_server),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}
