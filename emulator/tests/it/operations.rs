//! Successful calls and their effect on state, through the real SDK.

use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::types::{RelatedEntityType, ReviewStatus, Stage};

use crate::common::{client, signed_call, start};

const OFFER: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123";

#[tokio::test]
async fn get_opportunity_is_parsed_by_the_sdk() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let out = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect("GetOpportunity");
    assert_eq!(out.id(), "O1234567");
    assert_eq!(out.catalog(), "Sandbox");
    assert_eq!(out.arn(), Some("arn:aws:partnercentral:us-east-1:123456789012:catalog/Sandbox/opportunity/O1234567"));
    assert!(out.created_date().secs() > 1_600_000_000);
    assert!(out.last_modified_date().secs() >= out.created_date().secs());
    let life = out.life_cycle().expect("LifeCycle");
    assert_eq!(life.stage(), Some(&Stage::Prospect));
    assert_eq!(life.review_status(), Some(&ReviewStatus::PendingSubmission));
    let rel = out.related_entity_identifiers().expect("RelatedEntityIdentifiers");
    assert_eq!(rel.solutions(), ["S-0000001", "S-0000002"]);
    assert_eq!(rel.aws_products(), ["AmazonEC2", "AmazonS3"]);
    assert_eq!(rel.aws_marketplace_offers(), [OFFER]);
    assert!(rel.aws_marketplace_offer_sets().is_empty());
    assert!(rel.aws_marketplace_solutions().is_empty());
    assert!(rel.aws_marketplace_products().is_empty());
    let out = client.get_opportunity().catalog("Sandbox").identifier("O4000003").send().await.expect("offer set");
    let rel = out.related_entity_identifiers().expect("RelatedEntityIdentifiers");
    assert_eq!(
        rel.aws_marketplace_offer_sets(),
        ["arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-abc123"]
    );
    let state = emulator.state();
    let get = state.operation("GetOpportunity");
    assert_eq!((get.calls, get.successes), (2, 2));
    emulator.shutdown().await;
}

#[tokio::test]
async fn raw_get_opportunity_has_every_list_and_date_time_strings() {
    let emulator = start().await;
    let r =
        signed_call(&emulator.endpoint(), "GetOpportunity", r#"{"Catalog":"Sandbox","Identifier":"O2000001"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));
    assert!(r.header("x-amzn-RequestId").is_some());
    let body = r.json();
    let rel = body["RelatedEntityIdentifiers"].as_object().expect("object");
    for key in [
        "Solutions",
        "AwsProducts",
        "AwsMarketplaceOffers",
        "AwsMarketplaceOfferSets",
        "AwsMarketplaceSolutions",
        "AwsMarketplaceProducts",
    ] {
        assert!(rel[key].is_array(), "{key}");
    }
    let created = body["CreatedDate"].as_str().expect("string");
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn disassociate_associate_round_trip() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let disassociate = |t: RelatedEntityType, id: &'static str| {
        client
            .disassociate_opportunity()
            .catalog("Sandbox")
            .opportunity_identifier("O1234567")
            .related_entity_type(t)
            .related_entity_identifier(id)
            .send()
    };
    disassociate(RelatedEntityType::Solutions, "S-0000001").await.expect("first disassociation");
    disassociate(RelatedEntityType::AwsMarketplaceOffers, OFFER).await.expect("offer disassociation");

    // Again: not associated any more.
    let err = disassociate(RelatedEntityType::Solutions, "S-0000001")
        .await
        .expect_err("already disassociated")
        .into_service_error();
    match &err {
        DisassociateOpportunityError::ResourceNotFoundException(e) => {
            assert!(e.message().unwrap_or("").contains("is not associated"), "{e:?}")
        }
        other => panic!("unexpected {other:?}"),
    }

    let state = emulator.state();
    let opp = state.opportunity("Sandbox", "O1234567").expect("opportunity");
    assert_eq!(opp.related_entity_identifiers.solutions, ["S-0000002"]);
    assert!(opp.related_entity_identifiers.aws_marketplace_offers.is_empty());
    assert_eq!(state.disassociation_count("Sandbox", "O1234567", "Solutions", "S-0000001"), 1);
    assert_eq!(state.total_disassociations(), 2);
    let d = state.operation("DisassociateOpportunity");
    assert_eq!((d.calls, d.successes), (3, 2));
    assert_eq!(d.errors.get("ResourceNotFoundException"), Some(&1));

    // Associate back, twice (idempotent), then GetOpportunity sees it.
    for _ in 0..2 {
        client
            .associate_opportunity()
            .catalog("Sandbox")
            .opportunity_identifier("O1234567")
            .related_entity_type(RelatedEntityType::Solutions)
            .related_entity_identifier("S-0000001")
            .send()
            .await
            .expect("associate");
    }
    let out = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect("get");
    let rel = out.related_entity_identifiers().expect("rel");
    assert_eq!(rel.solutions(), ["S-0000002", "S-0000001"]);
    let state = emulator.state();
    assert_eq!(state.associations.len(), 1);
    assert_eq!(state.associations[0].count, 1);
    assert_eq!(state.operation("AssociateOpportunity").successes, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_entity_type_can_be_associated_and_disassociated() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let cases = [
        (RelatedEntityType::Solutions, "S-42"),
        (RelatedEntityType::AwsProducts, "AmazonRDS"),
        (RelatedEntityType::AwsMarketplaceOffers, OFFER),
        (
            RelatedEntityType::AwsMarketplaceOfferSets,
            "arn:aws:aws-marketplace:eu-west-1:123456789012:AWSMarketplace/OfferSet/offerset-x",
        ),
        (RelatedEntityType::AwsMarketplaceSolutions, "arn:aws:aws-marketplace:us-east-1:1:solution/x"),
        (RelatedEntityType::AwsMarketplaceProducts, "arn:aws:aws-marketplace:us-east-1:1:product/x"),
    ];
    // One at a time: an offer and an offer set together would break the one-offer limit.
    for (t, id) in &cases {
        client
            .associate_opportunity()
            .catalog("Sandbox")
            .opportunity_identifier("O2000002")
            .related_entity_type(t.clone())
            .related_entity_identifier(*id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("associate {t:?}: {e:?}"));
        let out = client.get_opportunity().catalog("Sandbox").identifier("O2000002").send().await.expect("get");
        let rel = out.related_entity_identifiers().expect("rel");
        let list = match t {
            RelatedEntityType::Solutions => rel.solutions(),
            RelatedEntityType::AwsProducts => rel.aws_products(),
            RelatedEntityType::AwsMarketplaceOffers => rel.aws_marketplace_offers(),
            RelatedEntityType::AwsMarketplaceOfferSets => rel.aws_marketplace_offer_sets(),
            RelatedEntityType::AwsMarketplaceSolutions => rel.aws_marketplace_solutions(),
            RelatedEntityType::AwsMarketplaceProducts => rel.aws_marketplace_products(),
            other => panic!("unexpected {other:?}"),
        };
        assert!(list.iter().any(|x| x == id), "{t:?} {id} in {rel:?}");
        client
            .disassociate_opportunity()
            .catalog("Sandbox")
            .opportunity_identifier("O2000002")
            .related_entity_type(t.clone())
            .related_entity_identifier(*id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("disassociate {t:?}: {e:?}"));
    }
    let state = emulator.state();
    assert_eq!(state.total_disassociations(), 6);
    assert!(state.disassociations.iter().all(|c| c.count == 1));
    emulator.shutdown().await;
}
