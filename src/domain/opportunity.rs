//! What an opportunity holds, as `GetOpportunity` shows it: the only way to tell an entity already
//! disassociated from an opportunity that does not exist, since the service's answer for the former
//! is undocumented. And the limits on what it may hold, which decide the order of a replacement.

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::request::{EntityType, RelatedEntity};

/// How many entities of some types, together, one opportunity may hold (Partner Central developer
/// guide, quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssociationLimit {
    pub types: &'static [EntityType],
    pub max: usize,
}

/// Every limit; each entity type counts against exactly one. An offer and an offer set share theirs.
pub const ASSOCIATION_LIMITS: [AssociationLimit; 5] = [
    AssociationLimit { types: &[EntityType::AwsProducts], max: 20 },
    AssociationLimit { types: &[EntityType::Solutions], max: 10 },
    AssociationLimit { types: &[EntityType::AwsMarketplaceSolutions], max: 10 },
    AssociationLimit { types: &[EntityType::AwsMarketplaceProducts], max: 10 },
    AssociationLimit { types: &[EntityType::AwsMarketplaceOffers, EntityType::AwsMarketplaceOfferSets], max: 1 },
];

impl AssociationLimit {
    /// The limit `entity_type` counts against.
    pub fn of(entity_type: EntityType) -> &'static AssociationLimit {
        ASSOCIATION_LIMITS
            .iter()
            .find(|limit| limit.types.contains(&entity_type))
            .expect("every entity type has a limit")
    }

    /// The types it counts, for messages: `AwsMarketplaceOffers or AwsMarketplaceOfferSets`.
    pub fn names(&self) -> String {
        self.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" or ")
    }
}

/// The related entities of one opportunity, by type, and its review status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    by_type: BTreeMap<EntityType, Vec<String>>,
    /// `LifeCycle.ReviewStatus`, when the read gave one.
    review_status: Option<String>,
}

/// The review statuses in which an opportunity takes no change at all: under AWS's review, or
/// rejected (read-only). A replacement is refused there as any write is.
const FROZEN: [&str; 3] = ["Submitted", "In review", REJECTED];
const REJECTED: &str = "Rejected";

impl Holdings {
    /// `identifiers` held as entities of `entity_type`, added to what is already there.
    pub fn with(mut self, entity_type: EntityType, identifiers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.by_type.entry(entity_type).or_default().extend(identifiers.into_iter().map(Into::into));
        self
    }

    /// The same holdings, of an opportunity whose `LifeCycle.ReviewStatus` is `status`.
    pub fn reviewed(mut self, status: impl Into<String>) -> Self {
        self.review_status = Some(status.into());
        self
    }

    /// The review status, when it is one in which the opportunity takes no change at all.
    pub fn frozen(&self) -> Option<&str> {
        self.review_status.as_deref().filter(|status| FROZEN.contains(status))
    }

    /// The review status, when AWS is reviewing the opportunity (`Submitted`, `In review`): a change
    /// waits for the review to end.
    pub fn under_review(&self) -> Option<&str> {
        self.frozen().filter(|status| *status != REJECTED)
    }

    /// AWS rejected the opportunity: it is read-only for good.
    pub fn rejected(&self) -> bool {
        self.frozen() == Some(REJECTED)
    }

    /// The identifiers held of one type.
    pub fn of(&self, entity_type: EntityType) -> &[String] {
        self.by_type.get(&entity_type).map_or(&[], Vec::as_slice)
    }

    pub fn holds(&self, entity: &RelatedEntity) -> bool {
        self.of(entity.entity_type()).iter().any(|id| id == entity.identifier())
    }

    /// How many of the entities held count against `limit`.
    pub fn counted_by(&self, limit: &AssociationLimit) -> usize {
        limit.types.iter().map(|t| self.of(*t).len()).sum()
    }

    /// Whether one more entity of `entity_type` keeps within its limit.
    pub fn has_room_for(&self, entity_type: EntityType) -> bool {
        let limit = AssociationLimit::of(entity_type);
        self.counted_by(limit) < limit.max
    }

    /// Whether `entity` is held, and is the only entity of its type held.
    pub fn holds_only(&self, entity: &RelatedEntity) -> bool {
        self.of(entity.entity_type()) == [entity.identifier()]
    }
}

/// The order of a replacement's two writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The service's documented order: the new entity first, so the opportunity is never without one.
    AssociateFirst,
    /// The opportunity cannot take one more of the new entity's kind until the old one is gone.
    DisassociateFirst,
}

impl Order {
    /// The order for replacing `old` by `new` on an opportunity holding `holdings`. Disassociating first
    /// leaves the opportunity without either for a while, so only when that is the one way: the new
    /// one's kind is at its limit, and removing `old` makes room. When it would not (a solution to be
    /// replaced by an eleventh Marketplace solution), the association is tried first all the same and
    /// the service refuses it, with nothing removed.
    pub fn of(holdings: &Holdings, old: &RelatedEntity, new: &RelatedEntity) -> Order {
        let limit = AssociationLimit::of(new.entity_type());
        let removing_makes_room = limit.types.contains(&old.entity_type());
        if !holdings.has_room_for(new.entity_type()) && removing_makes_room {
            Order::DisassociateFirst
        } else {
            Order::AssociateFirst
        }
    }

    /// The rule as it applies to replacing `old` by `new`, before the opportunity is read (`DRY_RUN`).
    pub fn rule(old: &RelatedEntity, new: &RelatedEntity) -> String {
        let limit = AssociationLimit::of(new.entity_type());
        if limit.types.contains(&old.entity_type()) {
            format!(
                "associate first, unless the opportunity already holds the maximum of {} ({}), then disassociate first",
                limit.names(),
                limit.max
            )
        } else {
            format!(
                "associate first (removing {} makes no room for {}, so the order never changes)",
                old.entity_type(),
                new.entity_type()
            )
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::AssociateFirst => "associate first",
            Order::DisassociateFirst => "disassociate first",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_A: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-a";
    const OFFER_B: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-b";
    const OFFER_SET: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-a";
    const SOLUTION_M: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-m";

    fn entity(entity_type: EntityType, identifier: &str) -> RelatedEntity {
        RelatedEntity::new(entity_type, identifier).unwrap()
    }

    fn solutions(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("S-{i}")).collect()
    }

    #[test]
    fn an_entity_is_held_by_type_and_identifier() {
        let holdings = Holdings::default().with(EntityType::Solutions, ["S-1", "S-2"]);
        assert!(holdings.holds(&RelatedEntity::new(EntityType::Solutions, "S-2").unwrap()));
        assert!(!holdings.holds(&RelatedEntity::new(EntityType::Solutions, "S-3").unwrap()));
        assert!(!holdings.holds(&RelatedEntity::new(EntityType::AwsProducts, "S-1").unwrap()));
        assert_eq!(holdings.of(EntityType::AwsProducts), [] as [String; 0]);
    }

    #[test]
    fn every_type_counts_against_one_limit_and_offers_share_theirs() {
        for entity_type in EntityType::ALL {
            let count = ASSOCIATION_LIMITS.iter().filter(|l| l.types.contains(&entity_type)).count();
            assert_eq!(count, 1, "{entity_type}");
        }
        let maxima = [
            (EntityType::AwsProducts, 20),
            (EntityType::Solutions, 10),
            (EntityType::AwsMarketplaceSolutions, 10),
            (EntityType::AwsMarketplaceProducts, 10),
            (EntityType::AwsMarketplaceOffers, 1),
            (EntityType::AwsMarketplaceOfferSets, 1),
        ];
        for (entity_type, max) in maxima {
            assert_eq!(AssociationLimit::of(entity_type).max, max, "{entity_type}");
        }
        let with_offer_set = Holdings::default().with(EntityType::AwsMarketplaceOfferSets, [OFFER_SET]);
        assert!(!with_offer_set.has_room_for(EntityType::AwsMarketplaceOffers), "an offer set fills the offer's place");
        assert!(with_offer_set.has_room_for(EntityType::Solutions));
    }

    #[test]
    fn room_is_counted_up_to_each_limit() {
        let nine = Holdings::default().with(EntityType::Solutions, solutions(9));
        assert!(nine.has_room_for(EntityType::Solutions));
        let ten = nine.with(EntityType::Solutions, ["S-10"]);
        assert!(!ten.has_room_for(EntityType::Solutions));
        assert!(ten.has_room_for(EntityType::AwsMarketplaceSolutions), "each kind has its own limit");
        let products = Holdings::default().with(EntityType::AwsProducts, (1..=19).map(|i| format!("p{i}")));
        assert!(products.has_room_for(EntityType::AwsProducts));
        assert!(!products.with(EntityType::AwsProducts, ["p20"]).has_room_for(EntityType::AwsProducts));
    }

    #[test]
    fn a_replacement_associates_first_unless_only_removing_the_old_one_makes_room() {
        let offer_a = entity(EntityType::AwsMarketplaceOffers, OFFER_A);
        let offer_b = entity(EntityType::AwsMarketplaceOffers, OFFER_B);
        let offer_set = entity(EntityType::AwsMarketplaceOfferSets, OFFER_SET);
        let holding_a = Holdings::default().with(EntityType::AwsMarketplaceOffers, [OFFER_A]);
        assert_eq!(Order::of(&holding_a, &offer_a, &offer_b), Order::DisassociateFirst, "an offer by an offer");
        assert_eq!(Order::of(&holding_a, &offer_a, &offer_set), Order::DisassociateFirst, "an offer by an offer set");
        assert_eq!(Order::of(&Holdings::default(), &offer_a, &offer_b), Order::AssociateFirst, "no offer held");

        let legacy = entity(EntityType::Solutions, "S-1");
        let eleventh = entity(EntityType::Solutions, "S-11");
        let marketplace = entity(EntityType::AwsMarketplaceSolutions, SOLUTION_M);
        let ten = Holdings::default().with(EntityType::Solutions, solutions(10));
        assert_eq!(Order::of(&ten, &legacy, &eleventh), Order::DisassociateFirst, "an eleventh solution");
        assert_eq!(Order::of(&ten, &legacy, &marketplace), Order::AssociateFirst, "another kind has room");
        let nine = Holdings::default().with(EntityType::Solutions, solutions(9));
        assert_eq!(Order::of(&nine, &legacy, &eleventh), Order::AssociateFirst, "room for one more");

        // Full, and removing the old one makes no room: associate first, and let the service refuse it.
        let full_marketplace =
            Holdings::default().with(EntityType::AwsMarketplaceSolutions, (1..=10).map(|i| format!("arn:m{i}")));
        assert_eq!(Order::of(&full_marketplace, &legacy, &marketplace), Order::AssociateFirst);
    }

    #[test]
    fn the_dry_run_rule_names_the_limit_only_when_it_can_change_the_order() {
        let offer_a = entity(EntityType::AwsMarketplaceOffers, OFFER_A);
        let offer_set = entity(EntityType::AwsMarketplaceOfferSets, OFFER_SET);
        let rule = Order::rule(&offer_a, &offer_set);
        assert!(rule.contains("unless the opportunity already holds the maximum of AwsMarketplaceOffers or AwsMarketplaceOfferSets (1), then disassociate first"), "{rule}");
        let rule = Order::rule(
            &entity(EntityType::Solutions, "S-1"),
            &entity(EntityType::AwsMarketplaceSolutions, SOLUTION_M),
        );
        assert!(rule.starts_with("associate first (removing Solutions makes no room"), "{rule}");
    }

    #[test]
    fn only_the_last_entity_of_its_type_is_held_alone() {
        let one = Holdings::default()
            .with(EntityType::Solutions, ["S-1"])
            .with(EntityType::AwsMarketplaceSolutions, [SOLUTION_M]);
        assert!(one.holds_only(&entity(EntityType::Solutions, "S-1")));
        assert!(!one.holds_only(&entity(EntityType::Solutions, "S-2")));
        let two = one.with(EntityType::Solutions, ["S-2"]);
        assert!(!two.holds_only(&entity(EntityType::Solutions, "S-1")));
    }
}
