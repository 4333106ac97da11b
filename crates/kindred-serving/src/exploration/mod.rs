//! Exploration in the server: what an impression says about the policy that showed it
//! ([`PolicyId`]) and off-policy evaluation of a candidate rank config from the impressions and
//! feedback the server logged ([`replay`]), and the online learning of contextual bandits
//! ([`learner`]).

pub mod learner;
mod policy_id;
pub mod replay;

pub use learner::BanditLearners;
pub use policy_id::PolicyId;
