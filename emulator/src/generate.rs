//! A generated seed of any size, the same for the same numbers: for tests and benches of a
//! migration from legacy solutions to their AWS Marketplace counterparts.

use crate::model::{
    LifeCycle, RelatedEntityIdentifiers, ReviewStatus, Seed, SeedOpportunity, SeedSolution, SolutionStatus, Stage,
};

/// The shares of the mix, in percent: every one is a draw per solution or opportunity.
const WITH_COUNTERPART: u32 = 70;
const NO_SOLUTION: u32 = 10;
const CARRYING_COUNTERPART: u32 = 15;
const CLOSED_LOST: u32 = 10;
const UNDER_REVIEW: u32 = 8;
const REJECTED: u32 = 2;

const CATEGORIES: [&str; 4] = ["Software Product", "Consulting Service", "Managed Service", "Professional Service"];

/// The Marketplace counterpart of the legacy solution numbered `n`.
fn counterpart(n: usize) -> String {
    format!("arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-{n:07}")
}

impl Seed {
    /// `opportunities` opportunities in the `Sandbox` catalog (`O00000001`, … in order) and one
    /// legacy solution for every 20 of them (at least 10; `S-0000001`, …), drawn from `rng_seed`:
    ///
    /// * solutions: 70 % with an `AwsMarketplaceSolutionArn`, the rest without; 85 % `Active`,
    ///   10 % `Inactive`, 5 % `Draft`;
    /// * opportunities: 10 % with no solution, the others 1 to 3 legacy solutions; of those
    ///   holding one with a counterpart, 15 % carry the counterpart already (half of them with the
    ///   legacy one gone); 10 % `Closed Lost`; 8 % under review (`Submitted` or `In review`),
    ///   2 % `Rejected`, the rest `Approved`, `Pending Submission` or `Action Required`; some
    ///   with an AWS product.
    ///
    /// Every opportunity keeps within the association limits.
    pub fn generate(opportunities: usize, rng_seed: u64) -> Seed {
        let mut rng = fastrand::Rng::with_seed(rng_seed);
        let solution_count = (opportunities / 20).max(10);
        let solutions: Vec<SeedSolution> = (1..=solution_count)
            .map(|n| {
                let status = match rng.u32(0..100) {
                    0..85 => SolutionStatus::Active,
                    85..95 => SolutionStatus::Inactive,
                    _ => SolutionStatus::Draft,
                };
                SeedSolution {
                    catalog: "Sandbox".to_owned(),
                    id: format!("S-{n:07}"),
                    name: Some(format!("Solution {n}")),
                    status,
                    category: CATEGORIES[rng.usize(0..CATEGORIES.len())].to_owned(),
                    aws_marketplace_solution_arn: (rng.u32(0..100) < WITH_COUNTERPART).then(|| counterpart(n)),
                }
            })
            .collect();
        let opportunities = (1..=opportunities)
            .map(|n| {
                let mut related = RelatedEntityIdentifiers::default();
                if rng.u32(0..100) >= NO_SOLUTION {
                    for _ in 0..rng.usize(1..=3) {
                        let s = rng.usize(1..=solution_count);
                        let id = format!("S-{s:07}");
                        if !related.solutions.contains(&id) {
                            related.solutions.push(id);
                        }
                    }
                    let with_counterpart: Vec<usize> = related
                        .solutions
                        .iter()
                        .filter_map(|id| id[2..].parse::<usize>().ok())
                        .filter(|s| solutions[s - 1].aws_marketplace_solution_arn.is_some())
                        .collect();
                    if let Some(&s) = with_counterpart.first()
                        && rng.u32(0..100) < CARRYING_COUNTERPART
                    {
                        related.aws_marketplace_solutions.push(counterpart(s));
                        if rng.bool() {
                            related.solutions.retain(|id| *id != format!("S-{s:07}"));
                        }
                    }
                }
                if rng.u32(0..100) < 30 {
                    related.aws_products.push(["AmazonEC2", "AmazonS3", "AmazonRDS"][rng.usize(0..3)].to_owned());
                }
                let stage = if rng.u32(0..100) < CLOSED_LOST {
                    Stage::ClosedLost
                } else {
                    Stage::ALL[rng.usize(0..Stage::ALL.len() - 1)]
                };
                let review_status = match rng.u32(0..100) {
                    r if r < UNDER_REVIEW / 2 => ReviewStatus::Submitted,
                    r if r < UNDER_REVIEW => ReviewStatus::InReview,
                    r if r < UNDER_REVIEW + REJECTED => ReviewStatus::Rejected,
                    r if r < 60 => ReviewStatus::Approved,
                    r if r < 90 => ReviewStatus::PendingSubmission,
                    _ => ReviewStatus::ActionRequired,
                };
                SeedOpportunity {
                    catalog: "Sandbox".to_owned(),
                    id: format!("O{n:08}"),
                    related_entity_identifiers: related,
                    life_cycle: LifeCycle { stage, review_status },
                }
            })
            .collect();
        Seed { denied_catalogs: Vec::new(), opportunities, solutions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_numbers_give_the_same_seed_and_it_is_valid() {
        let seed = Seed::generate(1000, 7);
        assert_eq!(seed, Seed::generate(1000, 7));
        assert_ne!(seed, Seed::generate(1000, 8));
        assert!(seed.validate().is_ok());
        assert_eq!((seed.opportunities.len(), seed.solutions.len()), (1000, 50));
        assert_eq!(seed.opportunities[0].id, "O00000001");
        assert!(Seed::generate(0, 1).validate().is_ok());
        assert_eq!(Seed::generate(10_000, 1).solutions.len(), 500);
    }

    #[test]
    fn the_mix_holds_every_case_a_migration_meets() {
        let seed = Seed::generate(1000, 1);
        let ops = &seed.opportunities;
        let count = |f: &dyn Fn(&SeedOpportunity) -> bool| ops.iter().filter(|o| f(o)).count();
        let has_counterpart =
            |id: &str| seed.solutions.iter().any(|s| s.id == id && s.aws_marketplace_solution_arn.is_some());
        let with_counterpart = count(&|o| o.related_entity_identifiers.solutions.iter().any(|s| has_counterpart(s)));
        let without = count(&|o| o.related_entity_identifiers.solutions.iter().any(|s| !has_counterpart(s)));
        let carrying = count(&|o| !o.related_entity_identifiers.aws_marketplace_solutions.is_empty());
        let closed = count(&|o| o.life_cycle.stage == Stage::ClosedLost);
        let review = count(&|o| matches!(o.life_cycle.review_status, ReviewStatus::Submitted | ReviewStatus::InReview));
        let none = count(&|o| o.related_entity_identifiers.solution_count() == 0);
        for (what, n) in [
            ("a legacy solution with a counterpart", with_counterpart),
            ("one without", without),
            ("the counterpart already", carrying),
            ("Closed Lost", closed),
            ("under review", review),
            ("no solution", none),
        ] {
            assert!(n > 10 && n < 1000, "{what}: {n} of 1000");
        }
        let solutions_without = seed.solutions.iter().filter(|s| s.aws_marketplace_solution_arn.is_none()).count();
        assert!(solutions_without > 0 && solutions_without < seed.solutions.len());
    }
}
