//! The model catalogue: every model that some available node offers, once,
//! with its cheapest price and how many nodes offer it. The OpenAI API's
//! `GET /v1/models` and the app's model picker both show this.

use serde::{Deserialize, Serialize};

use crate::pricing::TokenPrice;
use crate::registry::{NodeInfo, Task};
use crate::{MilliSats, ModelHash, UnixMillis};

/// One model on offer, summed over the nodes that offer it by this name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelListing {
    pub name: String,
    pub task: Task,
    /// The content hash of the cheapest offer.
    pub hash: ModelHash,
    /// Available nodes that offer it.
    pub providers: u32,
    /// The cheapest offer's price per job and per token.
    pub price_msat: MilliSats,
    #[serde(default, skip_serializing_if = "TokenPrice::is_zero")]
    pub token_price: TokenPrice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<u32>,
    /// When the earliest of its providers registered.
    pub since: UnixMillis,
}

impl ModelListing {
    /// "from 1 sat/job", in [`crate::pricing::describe`]'s words.
    pub fn price_label(&self) -> String {
        format!(
            "from {}",
            crate::pricing::describe(self.price_msat, self.token_price)
        )
    }
}

/// The catalogue of what `nodes` offer, sorted by name. Only nodes that can
/// take a job now count ([`NodeInfo::is_available`]).
pub fn catalog(nodes: &[NodeInfo]) -> Vec<ModelListing> {
    let mut listings = Catalog::default();
    for node in nodes.iter().filter(|n| n.is_available()) {
        listings.add(node);
    }
    listings.into_listings()
}

/// A catalogue being gathered, one node at a time.
#[derive(Debug, Default)]
pub struct Catalog {
    /// By model name.
    listings: std::collections::BTreeMap<String, ModelListing>,
}

impl Catalog {
    /// Adds what `node` offers (the caller knows it can take a job now).
    pub fn add(&mut self, node: &NodeInfo) {
        // Cheapest: per job, then per output token, then per input token.
        let cost =
            |price: MilliSats, tokens: TokenPrice| (price, tokens.output_msat, tokens.input_msat);
        for offer in &node.models {
            match self.listings.get_mut(&offer.name) {
                Some(l) => {
                    l.providers += 1;
                    l.since = l.since.min(node.registered_at);
                    if cost(offer.price_msat, offer.token_price) < cost(l.price_msat, l.token_price)
                    {
                        l.hash = offer.hash;
                        l.price_msat = offer.price_msat;
                        l.token_price = offer.token_price;
                        l.context_tokens = offer.context_tokens;
                        l.embedding_dim = offer.embedding_dim;
                    }
                }
                None => {
                    self.listings.insert(
                        offer.name.clone(),
                        ModelListing {
                            name: offer.name.clone(),
                            task: offer.task,
                            hash: offer.hash,
                            providers: 1,
                            price_msat: offer.price_msat,
                            token_price: offer.token_price,
                            context_tokens: offer.context_tokens,
                            embedding_dim: offer.embedding_dim,
                            since: node.registered_at,
                        },
                    );
                }
            }
        }
    }

    /// The listings, sorted by name.
    pub fn into_listings(self) -> Vec<ModelListing> {
        self.listings.into_values().collect()
    }
}
