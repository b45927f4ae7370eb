//! Skeleton.
pub struct Meta;
pub struct Tracker;
pub struct TrackerConfig;
pub struct TrackerStats;
