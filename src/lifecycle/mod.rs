//! ECR lifecycle policies (pure, no I/O, no clock): parsing and validation of ECR's lifecycle
//! policy JSON, and evaluation of a policy over one repository's images.
//!
//! Users paste their existing ECR lifecycle policies; this module decides which images they
//! expire. The service layer (`service::lifecycle`) loads images, calls [`evaluate`] with the
//! current time and applies the result; previews call the same function and apply nothing.
//!
//! * [`LifecyclePolicy::parse`] validates a document with ECR's rules and refuses it with a
//!   [`LifecycleError`] naming the rule (by `rulePriority`, or by index when the priority itself
//!   is the problem) and the field. The ECR API turns it into `InvalidParameterException`.
//! * [`evaluate`] returns the expiring images (oldest first), each with the priority of the one
//!   rule that expires it, and a [`Summary`].
//!
//! Evaluation (ECR's documented semantics):
//! * Every rule is evaluated over every image; the results are applied in priority order (lowest
//!   `rulePriority` first). An image is expired by at most one rule.
//! * A rule *selects* an image by `tagStatus` and its tag filter: `tagged` needs a tag, and every
//!   entry of `tagPrefixList` / `tagPatternList` must match at least one of the image's tags
//!   (AND; separate rules give OR); `untagged` selects images without tags; `any` selects all.
//! * An image selected by a higher-priority rule is shielded from every lower rule, whether or
//!   not the higher rule expired it (the "keep" idiom: `imageCountMoreThan 9999` on `prod*`).
//! * `imageCountMoreThan N`: the selected images, newest first by push time, beyond the first N.
//!   `sinceImagePushed N`: selected images pushed more than N days before now.
//!   `sinceImagePulled N` (beyond ECR, which only transitions with it): selected images not
//!   pulled for more than N days; an image never pulled counts from its push time.
//!
//! **Counting decision** (ECR's documentation leaves it unclear): a lower `imageCountMoreThan`
//! rule counts *every* image its filter selects, including images shielded by a higher rule and
//! images a higher rule already expired; it simply cannot act on them. This is what ECR's
//! "Filtering on multiple rules, Example A" shows (rule 2 "marks Image A and Image B" although
//! rule 1 expired A and B is shielded, so only C, the newest `beta` image, counts as kept there
//! and B survives on rule 1's account). Consequence: shielded images occupy places among the N
//! newest, so fewer unshielded images may be kept than N.
//!
//! Validation choices (ECR's rules, and where Berth is stricter or differs):
//! * `rules` must be a non-empty list; `rulePriority` a unique integer from 1; `countNumber` an
//!   integer from 1; `countUnit` (`days`) is required with the `since*` count types and refused
//!   with `imageCountMoreThan`.
//! * `tagged` requires exactly one of `tagPrefixList` / `tagPatternList` (non-empty, no empty
//!   entries); `untagged` and `any` must omit both. A pattern has at most four `*`.
//! * Only one rule may select `untagged` images; a rule with `tagStatus` `any` must have the
//!   highest `rulePriority` (so there is at most one).
//! * Berth has no archive storage class: `action.type` `transition`, `targetStorageClass`,
//!   `storageClass` `archive` and `countType` `sinceImageTransitioned` are refused naming the
//!   field (`storageClass` `standard`, the default, is accepted).
//! * Unknown fields are refused, naming them (a misspelt `tagPatternList` would otherwise widen
//!   the rule to every tagged image).
//! * The document is limited to 30,720 characters (ECR's limit).

mod document;
mod eval;

#[cfg(test)]
mod tests;

pub use document::{
    CountType, LifecycleError, LifecyclePolicy, Rule, RuleRef, TagSelection, TagStatus,
    MAX_LIFECYCLE_POLICY_CHARS,
};
pub use eval::{evaluate, Evaluation, Expiry, Image, Summary};
