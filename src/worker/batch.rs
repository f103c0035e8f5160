//! How the records of an SQS batch run: at once, except that the records of one FIFO message group
//! run in order and stop at the first failure, so that no later message of the group overtakes it.

use super::inbound::{Group, SqsBatch};
use super::{Invocation, Worker};
use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::PartnerCentral;
use crate::domain::outcome::Outcome;

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// Every record's outcome, in the batch's order.
    pub(super) async fn run_batch(&self, invocation: &Invocation, batch: &SqsBatch) -> Vec<Outcome> {
        let runs = lanes(batch).into_iter().map(|lane| async move {
            let mut outcomes = Vec::with_capacity(lane.len());
            let mut held_back = false;
            for index in lane {
                let outcome = self.process(invocation, &batch.records[index], held_back).await;
                held_back |= batch.fifo && outcome.goes_back();
                outcomes.push((index, outcome));
            }
            outcomes
        });
        let mut outcomes: Vec<(usize, Outcome)> = futures::future::join_all(runs).await.concat();
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }
}

/// The record indexes of each lane, each lane in the batch's order. FIFO: a lane per message group;
/// a record whose group cannot be read may belong to any group, so then the whole batch is one lane.
fn lanes(batch: &SqsBatch) -> Vec<Vec<usize>> {
    let records = &batch.records;
    if !batch.fifo {
        return (0..records.len()).map(|i| vec![i]).collect();
    }
    if records.iter().any(|r| r.group == Group::Unreadable) {
        return vec![(0..records.len()).collect()];
    }
    let mut groups: Vec<(&Group, Vec<usize>)> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match groups.iter_mut().find(|(group, _)| *group == &record.group) {
            Some((_, lane)) => lane.push(index),
            None => groups.push((&record.group, vec![index])),
        }
    }
    groups.into_iter().map(|(_, lane)| lane).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::inbound::{Record, Trigger};

    fn record(group: Group) -> Record {
        Record {
            trigger: Trigger::Sqs,
            request: Err(crate::domain::outcome::Failure::new("x", "y")),
            body: String::new(),
            source_id: None,
            group,
            receive_count: None,
            carried: Default::default(),
        }
    }

    fn known(group: &str) -> Group {
        Group::Known(group.to_owned())
    }

    #[test]
    fn a_lane_per_fifo_group_and_a_lane_per_record_otherwise() {
        let groups = [known("a"), known("b"), known("a"), Group::None, known("b")];
        let batch = |fifo| SqsBatch { records: groups.iter().cloned().map(record).collect(), fifo };
        assert_eq!(lanes(&batch(true)), [vec![0, 2], vec![1, 4], vec![3]]);
        assert_eq!(lanes(&batch(false)), [[0], [1], [2], [3], [4]]);
    }

    #[test]
    fn a_record_whose_group_cannot_be_read_puts_the_whole_batch_in_one_lane() {
        let records = [known("a"), Group::Unreadable, known("b")].into_iter().map(record).collect();
        assert_eq!(lanes(&SqsBatch { records, fifo: true }), [vec![0, 1, 2]]);
    }
}
