// The workflow bundle's entry point: every workflow type the workers run.
export { PublishImage } from './publish-image';
export { CheckServices } from './check-services';
export { DeploySddcBatch, DeployToSDDCs } from './deploy-to-sddcs';
