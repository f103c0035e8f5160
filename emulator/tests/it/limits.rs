//! Association limits per opportunity: a refused association is a business ValidationException and
//! changes nothing; seeds that break a limit are refused; the shipped seed obeys them.

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::types::{
    RelatedEntityType, ValidationExceptionErrorCode as Code, ValidationExceptionReason,
};
use partner_central_emulator::{AssociationLimit, EntityType, QuotaConfig, RunningEmulator, Seed};
use serde_json::{Value, json};

use crate::common::{client, control, disassociate_entity, entities, seed, signed_call, start};

const OFFER: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123";
const OFFER_DEF: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-def456";
const OFFER_NEW: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-ghi789";
const OFFER_SET: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-abc123";
const OFFER_SET_NEW: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-new";

type AssociateResult = Result<
    (),
    aws_sdk_partnercentralselling::error::SdkError<
        AssociateOpportunityError,
        aws_sdk_partnercentralselling::config::http::HttpResponse,
    >,
>;

async fn associate(client: &Client, opportunity: &str, t: RelatedEntityType, identifier: &str) -> AssociateResult {
    client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier(opportunity)
        .related_entity_type(t)
        .related_entity_identifier(identifier)
        .send()
        .await
        .map(|_| ())
}

/// Asserts the business-rule refusal of a limit and returns its ErrorList message.
fn assert_limit_refusal(result: AssociateResult, limit: &str) -> String {
    let err = result.expect_err("over the limit");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    match err.into_service_error() {
        AssociateOpportunityError::ValidationException(e) => {
            assert_eq!(e.reason(), &ValidationExceptionReason::BusinessValidationFailed);
            let list = e.error_list();
            assert_eq!(list.len(), 1, "{e:?}");
            assert_eq!(list[0].field_name(), Some("RelatedEntityIdentifier"));
            assert_eq!(list[0].code(), &Code::TooManyValues);
            assert!(list[0].message().contains(limit), "{e:?}");
            assert!(e.message().contains(limit), "{e:?}");
            list[0].message().to_owned()
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn many(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

/// One opportunity per limit, each filled to its limit.
fn full_seed() -> Seed {
    let opportunity =
        |id: &str, related: Value| json!({"Catalog": "Sandbox", "Id": id, "RelatedEntityIdentifiers": related});
    Seed::from_json(
        &json!({"Opportunities": [
            opportunity("O11", json!({"AwsProducts": many("Product", 20)})),
            opportunity("O12", json!({"Solutions": many("S-", 10)})),
            opportunity("O13", json!({"AwsMarketplaceSolutions": many("arn:aws:aws-marketplace:us-east-1:1:solution/", 10)})),
            opportunity("O14", json!({"AwsMarketplaceProducts": many("arn:aws:aws-marketplace:us-east-1:1:product/", 10)})),
        ]})
        .to_string(),
    )
    .expect("a seed at the limits is valid")
}

async fn start_full() -> RunningEmulator {
    crate::common::start_with(partner_central_emulator::EmulatorConfig {
        seed: full_seed(),
        quotas: QuotaConfig::unlimited(),
        ..partner_central_emulator::EmulatorConfig::default()
    })
    .await
}

#[tokio::test]
async fn each_per_type_limit_refuses_one_more_and_changes_nothing() {
    let emulator = start_full().await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    let cases = [
        ("O11", RelatedEntityType::AwsProducts, "Product21".to_owned(), "at most 20 AWS products"),
        ("O12", RelatedEntityType::Solutions, "S-11".to_owned(), "at most 10 solutions"),
        (
            "O13",
            RelatedEntityType::AwsMarketplaceSolutions,
            "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc".to_owned(),
            "at most 10 AWS Marketplace solutions",
        ),
        (
            "O14",
            RelatedEntityType::AwsMarketplaceProducts,
            "arn:aws:aws-marketplace:us-east-1:1:product/11".to_owned(),
            "at most 10 AWS Marketplace products",
        ),
    ];
    for (opportunity, t, id, limit) in &cases {
        let message = assert_limit_refusal(associate(&client, opportunity, t.clone(), id).await, limit);
        assert!(message.contains(opportunity) && message.contains(id.as_str()), "{message}");
    }
    let state = emulator.state();
    assert_eq!(entities(&state), before, "a refused association changes nothing");
    assert!(state.associations.is_empty());
    let a = state.operation("AssociateOpportunity");
    assert_eq!((a.calls, a.successes), (4, 0));
    assert_eq!(a.errors.get("ValidationException"), Some(&4));

    // Exactly at the limit is fine: make room, then the same association goes through.
    for (opportunity, t, id, _) in &cases {
        let held = state.opportunity("Sandbox", opportunity).expect("seeded");
        let entity_type = EntityType::parse(t.as_str()).expect("type");
        let first = held.related_entity_identifiers.list(entity_type)[0].clone();
        disassociate_entity(&client, "Sandbox", opportunity, t.clone(), &first).await.expect("make room");
        associate(&client, opportunity, t.clone(), id).await.expect("fits again");
        let after = emulator.state();
        let list = after
            .opportunity("Sandbox", opportunity)
            .expect("seeded")
            .related_entity_identifiers
            .list(entity_type)
            .len();
        assert_eq!(list, AssociationLimit::of(entity_type).max);
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn refused_association_wire_shape() {
    let emulator = start().await;
    let body = json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O4000002",
                      "RelatedEntityType": "AwsMarketplaceOffers", "RelatedEntityIdentifier": OFFER_NEW})
    .to_string();
    let r = signed_call(&emulator.endpoint(), "AssociateOpportunity", &body).await;
    let body = r.assert_aws_error(400, "ValidationException");
    assert_eq!(body["Reason"], "BUSINESS_VALIDATION_FAILED");
    assert_eq!(body["ErrorList"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["ErrorList"][0]["FieldName"], "RelatedEntityIdentifier");
    assert_eq!(body["ErrorList"][0]["Code"], "TOO_MANY_VALUES");
    let message = body["ErrorList"][0]["Message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 1 AWS Marketplace offer or offer set"), "{message}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn one_offer_or_offer_set_both_ways() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    let limit = "at most 1 AWS Marketplace offer or offer set";

    // O4000002 holds an offer: no second offer, no offer set.
    assert_limit_refusal(
        associate(&client, "O4000002", RelatedEntityType::AwsMarketplaceOffers, OFFER_NEW).await,
        limit,
    );
    assert_limit_refusal(
        associate(&client, "O4000002", RelatedEntityType::AwsMarketplaceOfferSets, OFFER_SET_NEW).await,
        limit,
    );
    // O4000003 holds an offer set: no offer, no second offer set.
    assert_limit_refusal(
        associate(&client, "O4000003", RelatedEntityType::AwsMarketplaceOffers, OFFER_NEW).await,
        limit,
    );
    assert_limit_refusal(
        associate(&client, "O4000003", RelatedEntityType::AwsMarketplaceOfferSets, OFFER_SET_NEW).await,
        limit,
    );
    // Associating the offer already there is the already-associated answer, not the limit.
    associate(&client, "O4000002", RelatedEntityType::AwsMarketplaceOffers, OFFER_DEF).await.expect("already there");
    let state = emulator.state();
    assert_eq!(entities(&state), before);
    assert!(state.associations.is_empty());
    assert_eq!(state.operation("AssociateOpportunity").errors.get("ValidationException"), Some(&4));

    // An offer is replaced by disassociating the old one first.
    disassociate_entity(&client, "Sandbox", "O4000002", RelatedEntityType::AwsMarketplaceOffers, OFFER_DEF)
        .await
        .expect("old offer off");
    associate(&client, "O4000002", RelatedEntityType::AwsMarketplaceOffers, OFFER_NEW).await.expect("new offer on");
    // An offer set, the same way, by an offer.
    disassociate_entity(&client, "Sandbox", "O4000003", RelatedEntityType::AwsMarketplaceOfferSets, OFFER_SET)
        .await
        .expect("offer set off");
    associate(&client, "O4000003", RelatedEntityType::AwsMarketplaceOffers, OFFER_NEW).await.expect("offer on");
    let state = emulator.state();
    let related = |id: &str| state.opportunity("Sandbox", id).expect("seeded").related_entity_identifiers.clone();
    assert_eq!(related("O4000002").aws_marketplace_offers, [OFFER_NEW]);
    assert_eq!(related("O4000003").aws_marketplace_offers, [OFFER_NEW]);
    assert!(related("O4000003").aws_marketplace_offer_sets.is_empty());
    emulator.shutdown().await;
}

#[tokio::test]
async fn shipped_seed_loads_and_has_the_replacement_opportunities() {
    let seed = seed();
    for opp in &seed.opportunities {
        let held =
            |types: &[EntityType]| types.iter().map(|t| opp.related_entity_identifiers.list(*t).len()).sum::<usize>();
        assert!(held(&[EntityType::AwsMarketplaceOffers, EntityType::AwsMarketplaceOfferSets]) <= 1, "{}", opp.id);
        assert!(opp.related_entity_identifiers.check_limits().is_ok(), "{}", opp.id);
    }
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let get = |id: &'static str| client.get_opportunity().catalog("Sandbox").identifier(id).send();

    let out = get("O1234567").await.expect("O1234567");
    let rel = out.related_entity_identifiers().expect("rel");
    assert_eq!(rel.aws_marketplace_offers(), [OFFER]);
    assert!(rel.aws_marketplace_offer_sets().is_empty());

    // A legacy solution to replace by a Marketplace solution.
    let out = get("O4000001").await.expect("O4000001");
    let rel = out.related_entity_identifiers().expect("rel");
    assert_eq!(rel.solutions(), ["S-4000001"]);
    assert!(rel.aws_marketplace_solutions().is_empty());
    let marketplace_solution = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
    associate(&client, "O4000001", RelatedEntityType::AwsMarketplaceSolutions, marketplace_solution)
        .await
        .expect("new first");
    disassociate_entity(&client, "Sandbox", "O4000001", RelatedEntityType::Solutions, "S-4000001")
        .await
        .expect("then the old one");

    // Exactly one offer, and exactly one offer set.
    let out = get("O4000002").await.expect("O4000002");
    assert_eq!(out.related_entity_identifiers().expect("rel").aws_marketplace_offers(), [OFFER_DEF]);
    let out = get("O4000003").await.expect("O4000003");
    assert_eq!(out.related_entity_identifiers().expect("rel").aws_marketplace_offer_sets(), [OFFER_SET]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn seeds_that_break_a_limit_are_refused() {
    let both = json!({"Opportunities": [{"Catalog": "Sandbox", "Id": "O1", "RelatedEntityIdentifiers": {
        "AwsMarketplaceOffers": [OFFER], "AwsMarketplaceOfferSets": [OFFER_SET]}}]})
    .to_string();
    let eleven = json!({"Opportunities": [{"Catalog": "Sandbox", "Id": "O1", "RelatedEntityIdentifiers": {
        "Solutions": many("S-", 11)}}]})
    .to_string();

    // At load.
    let err = Seed::from_json(&both).expect_err("refused").to_string();
    assert!(err.contains("Sandbox/O1") && err.contains("offer or offer set"), "{err}");
    let err = Seed::from_json(&eleven).expect_err("refused").to_string();
    assert!(err.contains("at most 10 solutions"), "{err}");
    let unchecked: Seed = serde_json::from_str(&both).expect("parses");
    let config = partner_central_emulator::EmulatorConfig { seed: unchecked.clone(), ..Default::default() };
    assert!(partner_central_emulator::Emulator::start(config).await.is_err());

    // At run time: the control endpoint and the library.
    let emulator = start().await;
    let ep = emulator.endpoint();
    let before = entities(&emulator.state());
    for bad in [&both, &eleven] {
        let r = control(&ep, "POST", "/_emulator/seed", bad).await;
        assert_eq!(r.status, 400, "{r:?}");
        let message = r.json()["Message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("at most"), "{message}");
    }
    assert!(emulator.seed(unchecked).is_err());
    assert_eq!(entities(&emulator.state()), before, "nothing changed");
    emulator.shutdown().await;
}
