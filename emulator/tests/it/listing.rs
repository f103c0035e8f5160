//! `ListSolutions` and `ListOpportunities` through the real SDK: filters, sort, paging that a
//! resumed scan can trust while writes happen, the model's bounds, and the read quota.

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::operation::list_opportunities::ListOpportunitiesError;
use aws_sdk_partnercentralselling::operation::list_solutions::ListSolutionsError;
use aws_sdk_partnercentralselling::types::{
    OpportunitySort, OpportunitySortName, RelatedEntityType, ReviewStatus as SdkReviewStatus, SolutionSort,
    SolutionSortName, SolutionStatus as SdkSolutionStatus, SortOrder, Stage as SdkStage,
    ValidationExceptionErrorCode as Code,
};
use partner_central_emulator::{
    DailyQuotaConfig, EmulatorConfig, LifeCycleChange, QuotaConfig, ReviewStatus, RollingQuotaConfig, Seed,
    TokenBucketConfig,
};
use serde_json::json;

use crate::common::{client, control, seed, signed_call, start, start_with};

const SOL_ABC: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";

fn ids<'a>(list: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    list.into_iter().map(str::to_owned).collect()
}

/// Every page of `ListOpportunities` sorted by identifier, `between` run after each page; the
/// identifiers in the order read, and the pages.
async fn scan_by_identifier(client: &Client, page: i32, mut between: impl AsyncFnMut(usize)) -> (Vec<String>, usize) {
    let sort = OpportunitySort::builder()
        .sort_by(OpportunitySortName::Identifier)
        .sort_order(SortOrder::Ascending)
        .build()
        .expect("sort");
    let (mut read, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let out = client
            .list_opportunities()
            .catalog("Sandbox")
            .max_results(page)
            .sort(sort.clone())
            .set_next_token(token.take())
            .send()
            .await
            .expect("a page");
        pages += 1;
        assert!(out.opportunity_summaries().len() <= page as usize);
        read.extend(out.opportunity_summaries().iter().filter_map(|o| o.id().map(str::to_owned)));
        between(pages).await;
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return (read, pages),
        }
    }
}

#[tokio::test]
async fn list_solutions_pages_filters_and_sorts_as_the_model_says() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;

    // Default: 20 a page, by identifier, descending; only the catalog asked for.
    let out = client.list_solutions().catalog("Sandbox").send().await.expect("ListSolutions");
    let all: Vec<String> =
        emulator.state().solutions.iter().filter(|s| s.catalog == "Sandbox").map(|s| s.id.clone()).rev().collect();
    assert_eq!(ids(out.solution_summaries().iter().map(|s| s.id())), all);
    assert_eq!(out.next_token(), None);
    let legacy = out.solution_summaries().iter().find(|s| s.id() == "S-4000001").expect("S-4000001");
    assert_eq!(legacy.aws_marketplace_solution_arn(), Some(SOL_ABC));
    assert_eq!(
        (legacy.name(), legacy.category(), legacy.status()),
        ("Legacy Connector", "Software Product", &SdkSolutionStatus::Active)
    );
    assert_eq!(legacy.catalog(), "Sandbox");
    assert!(legacy.created_date().secs() > 1_600_000_000);
    let alone = out.solution_summaries().iter().find(|s| s.id() == "S-0000002").expect("S-0000002");
    assert_eq!(alone.aws_marketplace_solution_arn(), None);

    // Pages of 4, in order, each item once.
    let (mut paged, mut token) = (Vec::new(), None::<String>);
    loop {
        let out = client
            .list_solutions()
            .catalog("Sandbox")
            .max_results(4)
            .set_next_token(token.take())
            .send()
            .await
            .expect("page");
        paged.extend(ids(out.solution_summaries().iter().map(|s| s.id())));
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);

    // Filters, each and together.
    let inactive =
        client.list_solutions().catalog("Sandbox").status(SdkSolutionStatus::Inactive).send().await.expect("status");
    assert_eq!(ids(inactive.solution_summaries().iter().map(|s| s.id())), ["S-3000004", "S-2000005"]);
    let by_arn =
        client.list_solutions().catalog("Sandbox").aws_marketplace_solution_arn(SOL_ABC).send().await.expect("arn");
    assert_eq!(ids(by_arn.solution_summaries().iter().map(|s| s.id())), ["S-4000001"]);
    let picked = client
        .list_solutions()
        .catalog("Sandbox")
        .identifier("S-2000004")
        .identifier("S-2000001")
        .identifier("S-7")
        .category("Software Product")
        .send()
        .await
        .expect("identifier and category");
    assert_eq!(ids(picked.solution_summaries().iter().map(|s| s.id())), ["S-2000001"]);
    let by_name = client
        .list_solutions()
        .catalog("Sandbox")
        .status(SdkSolutionStatus::Draft)
        .status(SdkSolutionStatus::Inactive)
        .sort(
            SolutionSort::builder()
                .sort_by(SolutionSortName::Name)
                .sort_order(SortOrder::Ascending)
                .build()
                .expect("sort"),
        )
        .send()
        .await
        .expect("sort by name");
    assert_eq!(
        by_name.solution_summaries().iter().map(|s| s.name()).collect::<Vec<_>>(),
        ["Cost Optimizer", "Next Release", "Retail Insights"]
    );
    let aws = client.list_solutions().catalog("AWS").send().await.expect_err("the AWS catalog is denied");
    assert!(matches!(aws.into_service_error(), ListSolutionsError::AccessDeniedException(_)));
    emulator.shutdown().await;
}

#[tokio::test]
async fn list_opportunities_summaries_carry_the_stage_and_review_status_and_filter_on_them() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let out = client
        .list_opportunities()
        .catalog("Sandbox")
        .life_cycle_review_status(SdkReviewStatus::InReview)
        .life_cycle_review_status(SdkReviewStatus::Submitted)
        .send()
        .await
        .expect("by review status");
    assert_eq!(ids(out.opportunity_summaries().iter().filter_map(|o| o.id())).len(), 2);
    let mut found = ids(out.opportunity_summaries().iter().filter_map(|o| o.id()));
    found.sort();
    assert_eq!(found, ["O3000002", "O3000003"]);
    let summary = out.opportunity_summaries().iter().find(|o| o.id() == Some("O3000003")).expect("O3000003");
    let life = summary.life_cycle().expect("LifeCycle");
    assert_eq!((life.stage(), life.review_status()), (Some(&SdkStage::Qualified), Some(&SdkReviewStatus::InReview)));
    assert_eq!(
        summary.arn(),
        Some("arn:aws:partnercentral:us-east-1:123456789012:catalog/Sandbox/opportunity/O3000003")
    );
    assert!(summary.last_modified_date().is_some() && summary.created_date().is_some());

    // Stage and identifier filters; a life cycle changed at run time shows at once.
    emulator
        .set_life_cycle(
            "Sandbox",
            "O2000001",
            LifeCycleChange { stage: Some(partner_central_emulator::Stage::ClosedLost), ..LifeCycleChange::default() },
        )
        .expect("closed");
    let closed = client
        .list_opportunities()
        .catalog("Sandbox")
        .life_cycle_stage(SdkStage::ClosedLost)
        .send()
        .await
        .expect("stage");
    assert_eq!(ids(closed.opportunity_summaries().iter().filter_map(|o| o.id())), ["O2000001"]);
    let picked = client
        .list_opportunities()
        .catalog("Sandbox")
        .identifier("O2000002")
        .identifier("O9999")
        .identifier("O1234567")
        .sort(
            OpportunitySort::builder()
                .sort_by(OpportunitySortName::Identifier)
                .sort_order(SortOrder::Descending)
                .build()
                .expect("sort"),
        )
        .send()
        .await
        .expect("identifiers");
    assert_eq!(ids(picked.opportunity_summaries().iter().filter_map(|o| o.id())), ["O2000002", "O1234567"]);

    // The default sort is the last modification, newest first (ties by identifier).
    let out = client.list_opportunities().catalog("Sandbox").max_results(100).send().await.expect("default sort");
    let keys: Vec<(i64, String)> = out
        .opportunity_summaries()
        .iter()
        .map(|o| (o.last_modified_date().map_or(0, |d| d.secs()), o.id().unwrap_or("").to_owned()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] >= w[1]), "{keys:?}");
    assert_eq!(keys.len(), 14);

    // Date filters, bounds included.
    let ep = emulator.endpoint();
    for (range, expected) in [
        (json!({"AfterLastModifiedDate": "2000-01-01T00:00:00Z"}), 14),
        (json!({"BeforeLastModifiedDate": "2000-01-01T00:00:00.000Z"}), 0),
    ] {
        let body = json!({"Catalog": "Sandbox", "LastModifiedDate": range, "CreatedDate": {"AfterCreatedDate": "1999-12-31T23:00:00-01:00"}});
        let r = signed_call(&ep, "ListOpportunities", &body.to_string()).await;
        assert_eq!(r.json()["OpportunitySummaries"].as_array().map(Vec::len), Some(expected), "{body}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_scan_sorted_by_identifier_reads_each_opportunity_once_while_writes_happen() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    let r = control(&ep, "POST", "/_emulator/seed/generate", r#"{"Opportunities":1000,"RngSeed":7}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"Status": "ok", "Opportunities": 1000, "Solutions": 50})));
    let generated = Seed::generate(1000, 7);
    let expected: Vec<String> = generated.opportunities.iter().map(|o| o.id.clone()).collect();
    let client = client(&ep).await;

    // Between pages: an association on an opportunity not read yet, one already read, and a
    // review status change, every one of which moves its opportunity's LastModifiedDate.
    let writer = client.clone();
    let emulator_ref = &emulator;
    let (read, pages) = scan_by_identifier(&client, 37, async |page| {
        for id in [format!("O{:08}", page * 37 + 5), format!("O{:08}", page * 37 - 3)] {
            let _ = writer
                .associate_opportunity()
                .catalog("Sandbox")
                .opportunity_identifier(&id)
                .related_entity_type(RelatedEntityType::AwsProducts)
                .related_entity_identifier("AmazonDynamoDB")
                .send()
                .await;
        }
        let change = LifeCycleChange { review_status: Some(ReviewStatus::Approved), ..LifeCycleChange::default() };
        let _ = emulator_ref.set_life_cycle("Sandbox", &format!("O{:08}", page * 37 + 11), change);
    })
    .await;
    assert_eq!(read, expected, "every opportunity once, in order");
    assert_eq!(pages, 1000usize.div_ceil(37));
    let writes = emulator.state().operation("AssociateOpportunity");
    assert!(writes.successes > 20, "the writes happened: {writes:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_paging_and_filters_are_validation_errors() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let code_of = |e: ListOpportunitiesError| match e {
        ListOpportunitiesError::ValidationException(v) => v
            .error_list()
            .iter()
            .map(|f| (f.field_name().unwrap_or("").to_owned(), f.code().clone()))
            .collect::<Vec<_>>(),
        other => panic!("unexpected {other:?}"),
    };
    for (max, ok) in [(0, false), (1, true), (100, true), (101, false)] {
        let r = client.list_opportunities().catalog("Sandbox").max_results(max).send().await;
        match r {
            Ok(out) => assert!(ok && out.opportunity_summaries().len() <= max as usize, "{max}"),
            Err(e) => {
                assert!(!ok, "{max}: {e:?}");
                assert_eq!(code_of(e.into_service_error()), [("MaxResults".to_owned(), Code::ValueOutOfRange)]);
            }
        }
    }
    let first = client.list_opportunities().catalog("Sandbox").max_results(2).send().await.expect("page");
    let token = first.next_token().expect("more").to_owned();
    // A token that was never answered, and one answered to another request.
    for (token, stage) in
        [("nope".to_owned(), None), (format!("{token}0"), None), (token.clone(), Some(SdkStage::Prospect))]
    {
        let err = client
            .list_opportunities()
            .catalog("Sandbox")
            .max_results(2)
            .next_token(token.clone())
            .set_life_cycle_stage(stage.map(|s| vec![s]))
            .send()
            .await
            .expect_err("bad token");
        assert_eq!(code_of(err.into_service_error()), [("NextToken".to_owned(), Code::InvalidValue)], "{token}");
    }
    // The same token with another page size continues.
    let next =
        client.list_opportunities().catalog("Sandbox").max_results(50).next_token(token).send().await.expect("next");
    assert_eq!(
        next.opportunity_summaries().len() + 2,
        emulator.state().opportunities.iter().filter(|o| o.catalog == "Sandbox").count()
    );

    let ep = emulator.endpoint();
    for (operation, body, expected) in [
        ("ListSolutions", json!({}), vec![("Catalog", "REQUIRED_FIELD_MISSING")]),
        ("ListSolutions", json!({"Catalog": "Sandbox", "Status": ["active"]}), vec![("Status", "INVALID_ENUM_VALUE")]),
        (
            "ListSolutions",
            json!({"Catalog": "Sandbox", "Identifier": ["S-1", "O1"]}),
            vec![("Identifier", "INVALID_STRING_FORMAT")],
        ),
        (
            "ListSolutions",
            json!({"Catalog": "Sandbox", "AwsMarketplaceSolutionArn": ["sol-1"]}),
            vec![("AwsMarketplaceSolutionArn", "INVALID_STRING_FORMAT")],
        ),
        (
            "ListSolutions",
            json!({"Catalog": "Sandbox", "Sort": {"SortBy": "Identifier"}}),
            vec![("Sort", "REQUIRED_FIELD_MISSING")],
        ),
        (
            "ListSolutions",
            json!({"Catalog": "Sandbox", "Sort": {"SortBy": "LastModifiedDate", "SortOrder": "ASCENDING"}}),
            vec![("Sort", "INVALID_ENUM_VALUE")],
        ),
        ("ListSolutions", json!({"Catalog": "Sandbox", "MaxResults": "5"}), vec![("MaxResults", "INVALID_VALUE")]),
        (
            "ListOpportunities",
            json!({"Catalog": "prod", "Identifier": (0..21).map(|i| format!("O{i}")).collect::<Vec<_>>()}),
            vec![("Catalog", "INVALID_ENUM_VALUE"), ("Identifier", "TOO_MANY_VALUES")],
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "Sandbox", "LifeCycleReviewStatus": ["In Review"]}),
            vec![("LifeCycleReviewStatus", "INVALID_ENUM_VALUE")],
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "Sandbox", "LifeCycleStage": ["Closed Won"]}),
            vec![("LifeCycleStage", "INVALID_ENUM_VALUE")],
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "Sandbox", "LastModifiedDate": {"AfterLastModifiedDate": "yesterday"}}),
            vec![("LastModifiedDate", "INVALID_VALUE")],
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "Sandbox", "CustomerCompanyName": ["Acme"]}),
            vec![("CustomerCompanyName", "INVALID_VALUE")],
        ),
        (
            "ListOpportunities",
            json!({"Catalog": "Sandbox", "Sort": {"SortBy": "TargetCloseDate", "SortOrder": "ASCENDING"}}),
            vec![("Sort", "INVALID_VALUE")],
        ),
    ] {
        let r = signed_call(&ep, operation, &body.to_string()).await;
        let answer = r.assert_aws_error(400, "ValidationException");
        assert_eq!(answer["Reason"], "REQUEST_VALIDATION_FAILED", "{body}");
        let got: Vec<(String, String)> = answer["ErrorList"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        (e["FieldName"].as_str().unwrap_or("").to_owned(), e["Code"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<(String, String)> = expected.into_iter().map(|(f, c)| (f.to_owned(), c.to_owned())).collect();
        assert_eq!(got, expected, "{operation} {body}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn listings_are_reads_and_count_against_the_read_quotas() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig { write: None, read: Some(TokenBucketConfig { rate: 0.0, burst: 3.0 }) },
        daily_quotas: DailyQuotaConfig {
            write: None,
            read: Some(RollingQuotaConfig { cap: 100, window_seconds: 3600.0 }),
        },
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator.endpoint()).await;
    client.list_solutions().catalog("Sandbox").send().await.expect("read 1");
    client.list_opportunities().catalog("Sandbox").send().await.expect("read 2");
    client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect("read 3");
    let err = client.list_opportunities().catalog("Sandbox").send().await.expect_err("the read bucket is empty");
    assert!(matches!(err.into_service_error(), ListOpportunitiesError::ThrottlingException(_)));
    let err = client.list_solutions().catalog("Sandbox").send().await.expect_err("the read bucket is empty");
    assert!(matches!(err.into_service_error(), ListSolutionsError::ThrottlingException(_)));
    let state = emulator.state();
    assert_eq!(state.operation("ListSolutions").quota_throttled, 1);
    assert_eq!(state.operation("ListOpportunities").quota_throttled, 1);
    assert_eq!(state.daily_use.read.map(|r| r.used), Some(3));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_generated_seed_is_the_one_the_library_builds_and_the_flag_loads_it() {
    let emulator = start().await;
    let generated = Seed::generate(200, 3);
    emulator.seed(generated.clone()).expect("seed");
    let via_control = start().await;
    let r =
        control(&via_control.endpoint(), "POST", "/_emulator/seed/generate", r#"{"Opportunities":200,"RngSeed":3}"#)
            .await;
    assert_eq!(r.status, 200);
    let (a, b) = (emulator.state(), via_control.state());
    assert_eq!(crate::common::entities(&a), crate::common::entities(&b));
    assert_eq!(
        a.solutions,
        b.solutions
            .iter()
            .map(|s| partner_central_emulator::SolutionState {
                created_date: a.solutions[0].created_date.clone(),
                ..s.clone()
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(a.opportunities.len(), 200);
    for bad in [
        r#"{"Opportunities":-1}"#,
        r#"{"Opportunities":2000000}"#,
        r#"{"RngSeed":1}"#,
        r#"{"Opportunities":1,"Extra":1}"#,
    ] {
        assert_eq!(
            control(&via_control.endpoint(), "POST", "/_emulator/seed/generate", bad).await.status,
            400,
            "{bad}"
        );
    }
    emulator.shutdown().await;
    via_control.shutdown().await;
}
