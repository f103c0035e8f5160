//! A replacement (`ReplaceWith`): the new entity associated and the old one disassociated, in the
//! order the service documents (the new one first, so the opportunity is never without one), unless
//! its association limits leave no room for the new one until the old one is gone.
//!
//! The opportunity is read first, and only the writes still needed are made: a redelivery after a
//! replacement cut off between its writes finishes it, and one already done makes no write at all.
//! An ambiguous answer (not found, a business rule, a conflict) is settled by reading the opportunity
//! again, since the service's answers for "already there" and "already gone" are undocumented.

use std::fmt::Display;

use tracing::{info, warn};

use super::calls::{Failed, Write, WriteError, settle_by_read};
use super::decide::{Verdict, stopped_by_review};
use super::{Invocation, Worker};
use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::{ErrorClass, PartnerCentral};
use crate::domain::opportunity::{AssociationLimit, Holdings, Order};
use crate::domain::outcome::{Done, Failure, Hold};
use crate::domain::request::{DisassociationRequest, EntityType, RelatedEntity};

/// The writes a replacement still needs, as the opportunity's holdings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Old gone, new there: nothing to write.
    Done,
    /// Both writes, in this order.
    Both(Order),
    /// The new one is there (an earlier delivery associated it): the old one is removed.
    DisassociateOnly,
    /// Neither is there (an earlier delivery removed the old one, or it never was): the new one is
    /// associated, as the request intends.
    AssociateOnly,
}

impl Plan {
    fn of(holdings: &Holdings, old: &RelatedEntity, new: &RelatedEntity) -> Plan {
        match (holdings.holds(old), holdings.holds(new)) {
            (false, true) => Plan::Done,
            (true, true) => Plan::DisassociateOnly,
            (false, false) => Plan::AssociateOnly,
            (true, false) => Plan::Both(Order::of(holdings, old, new)),
        }
    }
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// Replaces `request.entity` by `new` on the request's opportunity.
    pub(super) async fn replace(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        new: &RelatedEntity,
    ) -> Verdict {
        let old = &request.entity;
        let holdings = match self.read(invocation, request.catalog, &request.opportunity).await {
            Ok(Some(holdings)) => holdings,
            Ok(None) => {
                return Verdict::Permanent(
                    Failure::no_such_opportunity(&request.opportunity).noted("nothing was changed"),
                );
            }
            Err(error) => {
                let nothing = |failure: Failure| {
                    Failure {
                        message: format!("reading the opportunity (GetOpportunity): {}", with_code(&failure)),
                        ..failure
                    }
                    .noted("nothing was changed")
                };
                return match Failed::of(error) {
                    Failed::Transient(failure) => Verdict::Transient(nothing(failure)),
                    Failed::Permanent(failure) => Verdict::Permanent(nothing(failure)),
                    Failed::Held(hold) => Verdict::Held(hold),
                };
            }
        };
        // Under AWS's review (or once it rejected the opportunity) every write is refused: wait for
        // the review's end, or give up, without spending one.
        if let Some(stopped) = stopped_by_review(&holdings, self.review_recheck_at(), None) {
            return stopped.into();
        }
        let plan = Plan::of(&holdings, old, new);
        info!(?plan, old = %old, new = %new, "replacement");
        let (associate, disassociate) = (Write::Associate(new), Write::Disassociate(old));
        match plan {
            Plan::Done => Verdict::Done(Done::AlreadyReplaced),
            Plan::Both(Order::AssociateFirst) => {
                if let Err(failure) = self.step(invocation, request, associate, 1).await {
                    return failure.at("step 1 of 2", associate, "nothing was removed", "the redelivery tries again");
                }
                self.remove_old(invocation, request, new).await
            }
            Plan::Both(Order::DisassociateFirst) => {
                if let Err(failure) = self.step(invocation, request, disassociate, 1).await {
                    return failure.at(
                        "step 1 of 2",
                        disassociate,
                        "nothing was changed",
                        "the redelivery reads the opportunity and goes on from what it shows",
                    );
                }
                match self.step(invocation, request, associate, 0).await {
                    Ok(()) => Verdict::Done(Done::Replaced),
                    Err(Failed::Permanent(failure)) => {
                        Verdict::Permanent(refused_after_removal(failure, &holdings, old, new))
                    }
                    Err(transient) => transient.at(
                        "step 2 of 2",
                        associate,
                        format_args!("{old} was removed"),
                        format_args!("the redelivery associates {new}"),
                    ),
                }
            }
            Plan::DisassociateOnly => self.remove_old(invocation, request, new).await,
            Plan::AssociateOnly => {
                warn!(
                    old = %old,
                    new = %new,
                    "the entity to replace is not on the opportunity (an earlier delivery may have removed it): associating its replacement only"
                );
                match self.step(invocation, request, associate, 0).await {
                    Ok(()) => Verdict::Done(Done::Replaced),
                    Err(failure) => failure.at(
                        "the one step left",
                        associate,
                        format_args!("{old} is not on the opportunity either"),
                        "the redelivery tries again",
                    ),
                }
            }
        }
    }

    /// Step 2 of 2 in the documented order: `new` is on the opportunity, the old entity goes.
    async fn remove_old(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        new: &RelatedEntity,
    ) -> Verdict {
        let (old, disassociate) = (&request.entity, Write::Disassociate(&request.entity));
        match self.step(invocation, request, disassociate, 0).await {
            Ok(()) => Verdict::Done(Done::Replaced),
            Err(failure) => failure.at(
                "step 2 of 2",
                disassociate,
                format_args!("{new} is on the opportunity, and {old} stays on it"),
                format_args!("the redelivery removes {old}"),
            ),
        }
    }

    /// One write, paced, and confirmed: by its success, or by a read showing it done after an answer
    /// that may mean it already was. `writes_after`: the writes that must still follow it in this
    /// invocation, whose slots it leaves room for.
    async fn step(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        write: Write<'_>,
        writes_after: u32,
    ) -> Result<(), Failed> {
        let (catalog, opportunity) = (request.catalog, &request.opportunity);
        let error = match self.write_followed_by(invocation, catalog, opportunity, write, writes_after).await {
            Ok(()) => return Ok(()),
            Err(WriteError::Deadline(failure)) => return Err(Failed::Transient(failure)),
            Err(WriteError::NoRoom { until_ms }) => return Err(WriteError::no_room(until_ms)),
            Err(WriteError::Api { error, .. }) => error,
        };
        if error.class != ErrorClass::Ambiguous {
            return Err(Failed::of(error));
        }
        let holdings = settle_by_read(&error, opportunity, self.read(invocation, catalog, opportunity)).await?;
        if done(&holdings, write) {
            return Ok(());
        }
        // A review began, or ended in a rejection, between the first read and this write.
        let refused = Failure::from(error);
        Err(stopped_by_review(&holdings, self.review_recheck_at(), Some(&refused))
            .unwrap_or(Failed::Permanent(refused)))
    }
}

impl Failed {
    /// The verdict on a replacement that stopped at `step` (`write`), its reason saying what that
    /// `leaves`, and, when transient, what a redelivery does about it (said only if one follows: not
    /// at the message's last receive).
    fn at(self, step: &str, write: Write<'_>, leaves: impl Display, redelivery: impl Display) -> Verdict {
        let explain = |failure: Failure| Failure {
            message: format!("{step} ({write}): {}; {leaves}", with_code(&failure)),
            ..failure
        };
        match self {
            Failed::Permanent(failure) => Verdict::Permanent(explain(failure)),
            Failed::Transient(failure) => Verdict::Transient(explain(failure).until_redelivered(redelivery)),
            Failed::Held(hold) => {
                Verdict::Held(Hold { reason: format!("{step} ({write}): {}; {leaves}", hold.reason), ..hold })
            }
        }
    }
}

/// Whether the opportunity shows `write` done.
fn done(holdings: &Holdings, write: Write<'_>) -> bool {
    match write {
        Write::Associate(entity) => holdings.holds(entity),
        Write::Disassociate(entity) => !holdings.holds(entity),
    }
}

/// A failure's message with its code in front: the message alone (an EventBridge `OnFailure`
/// record's) then says what the service answered.
fn with_code(failure: &Failure) -> String {
    format!("{}: {}", failure.code, failure.message)
}

/// The old entity was removed (disassociated first, for want of room) and the new one refused for
/// good: said first, plainly, for the operator who must put one back.
fn refused_after_removal(failure: Failure, holdings: &Holdings, old: &RelatedEntity, new: &RelatedEntity) -> Failure {
    let limit = AssociationLimit::of(new.entity_type());
    let now = if holdings.counted_by(limit) == 1 {
        format!("the opportunity now has no {}", kinds(limit))
    } else {
        format!("the opportunity now holds neither, and one {} fewer", kinds(limit))
    };
    let message = format!(
        "the old {} {} was removed and the new one {} was refused: {now}: step 2 of 2 ({}): {}",
        kind(old.entity_type()),
        old.identifier(),
        new.identifier(),
        Write::Associate(new),
        with_code(&failure)
    );
    Failure { message, ..failure }
}

/// An entity type in words.
fn kind(entity_type: EntityType) -> &'static str {
    match entity_type {
        EntityType::Solutions => "solution",
        EntityType::AwsProducts => "AWS product",
        EntityType::AwsMarketplaceOffers => "offer",
        EntityType::AwsMarketplaceOfferSets => "offer set",
        EntityType::AwsMarketplaceSolutions => "Marketplace solution",
        EntityType::AwsMarketplaceProducts => "Marketplace product",
    }
}

/// The kinds a limit counts, in words: `offer or offer set`.
fn kinds(limit: &AssociationLimit) -> String {
    limit.types.iter().map(|t| kind(*t)).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_A: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-a";
    const OFFER_B: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-b";

    fn entity(entity_type: EntityType, identifier: &str) -> RelatedEntity {
        RelatedEntity::new(entity_type, identifier).unwrap()
    }

    #[test]
    fn the_plan_makes_only_the_writes_the_opportunity_still_needs() {
        let old = entity(EntityType::Solutions, "S-1");
        let new = entity(EntityType::AwsMarketplaceSolutions, "arn:new");
        let both = Holdings::default()
            .with(EntityType::Solutions, ["S-1"])
            .with(EntityType::AwsMarketplaceSolutions, ["arn:new"]);
        assert_eq!(Plan::of(&both, &old, &new), Plan::DisassociateOnly);
        let replaced = Holdings::default().with(EntityType::AwsMarketplaceSolutions, ["arn:new"]);
        assert_eq!(Plan::of(&replaced, &old, &new), Plan::Done);
        assert_eq!(Plan::of(&Holdings::default(), &old, &new), Plan::AssociateOnly);
        let before = Holdings::default().with(EntityType::Solutions, ["S-1"]);
        assert_eq!(Plan::of(&before, &old, &new), Plan::Both(Order::AssociateFirst));
        let offer = Holdings::default().with(EntityType::AwsMarketplaceOffers, [OFFER_A]);
        let (old, new) =
            (entity(EntityType::AwsMarketplaceOffers, OFFER_A), entity(EntityType::AwsMarketplaceOffers, OFFER_B));
        assert_eq!(Plan::of(&offer, &old, &new), Plan::Both(Order::DisassociateFirst));
    }

    #[test]
    fn a_refusal_after_the_removal_says_what_the_opportunity_is_left_with() {
        let (old, new) =
            (entity(EntityType::AwsMarketplaceOffers, OFFER_A), entity(EntityType::AwsMarketplaceOffers, OFFER_B));
        let holdings = Holdings::default().with(EntityType::AwsMarketplaceOffers, [OFFER_A]);
        let failure = refused_after_removal(Failure::new("AccessDeniedException", "no"), &holdings, &old, &new);
        assert_eq!(failure.code, "AccessDeniedException");
        assert!(
            failure.message.starts_with(&format!(
                "the old offer {OFFER_A} was removed and the new one {OFFER_B} was refused: the opportunity now has no offer or offer set: step 2 of 2 (AssociateOpportunity of AwsMarketplaceOffers {OFFER_B}): AccessDeniedException: no"
            )),
            "{}",
            failure.message
        );
        let ten = Holdings::default().with(EntityType::Solutions, (1..=10).map(|i| format!("S-{i}")));
        let (old, new) = (entity(EntityType::Solutions, "S-1"), entity(EntityType::Solutions, "S-11"));
        let failure = refused_after_removal(Failure::new("x", "y"), &ten, &old, &new);
        assert!(failure.message.contains("now holds neither, and one solution fewer"), "{}", failure.message);
    }
}
