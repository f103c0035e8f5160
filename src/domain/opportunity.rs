//! What an opportunity holds, as `GetOpportunity` shows it: the only way to tell an entity already
//! disassociated from an opportunity that does not exist, since the service's answer for the former
//! is undocumented.

use std::collections::BTreeMap;

use crate::domain::request::{EntityType, RelatedEntity};

/// The related entities of one opportunity, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    by_type: BTreeMap<EntityType, Vec<String>>,
}

impl Holdings {
    /// `identifiers` held as entities of `entity_type`, added to what is already there.
    pub fn with(mut self, entity_type: EntityType, identifiers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.by_type.entry(entity_type).or_default().extend(identifiers.into_iter().map(Into::into));
        self
    }

    /// The identifiers held of one type.
    pub fn of(&self, entity_type: EntityType) -> &[String] {
        self.by_type.get(&entity_type).map_or(&[], Vec::as_slice)
    }

    pub fn holds(&self, entity: &RelatedEntity) -> bool {
        self.of(entity.entity_type()).iter().any(|id| id == entity.identifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_is_held_by_type_and_identifier() {
        let holdings = Holdings::default().with(EntityType::Solutions, ["S-1", "S-2"]);
        assert!(holdings.holds(&RelatedEntity::new(EntityType::Solutions, "S-2").unwrap()));
        assert!(!holdings.holds(&RelatedEntity::new(EntityType::Solutions, "S-3").unwrap()));
        assert!(!holdings.holds(&RelatedEntity::new(EntityType::AwsProducts, "S-1").unwrap()));
        assert_eq!(holdings.of(EntityType::AwsProducts), [] as [String; 0]);
    }
}
