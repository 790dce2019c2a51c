// The workflow bundle's entry point: every workflow type the workers run.
export { PublishImage } from './publish-image';
export { CheckServices } from './check-services';
export { DeploySddcBatch, DeployToSDDCs } from './deploy-to-sddcs';
export { RetireImage } from './retire-image';
export { RetireSddcBatch } from './retire-batches';
export { VerifyReplicas } from './verify-replicas';
export { ApplyRetention } from './apply-retention';
export { VerifySddcs } from './verify-sddcs';
export { Rollout } from './rollout';
