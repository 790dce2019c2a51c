import { MongoClient, type Db } from 'mongodb';
import { AttemptsRepository } from './attempts-repository';
import { ChannelsRepository } from './channels-repository';
import { DeployLeasesRepository } from './deploy-leases-repository';
import { DeploymentsRepository } from './deployments-repository';
import { ReplicasRepository } from './replicas-repository';
import { RetentionRepository } from './retention-repository';
import { SddcsRepository } from './sddcs-repository';
import { VersionsRepository } from './versions-repository';

/**
 * The catalog in MongoDB (docs/architecture.md): one repository per collection, over one connection.
 * The records they hold are plain data in image-records, sddc-records and deployment-records.
 */
export class Catalog {
  readonly versions: VersionsRepository;
  readonly replicas: ReplicasRepository;
  readonly sddcs: SddcsRepository;
  readonly deployments: DeploymentsRepository;
  readonly attempts: AttemptsRepository;
  readonly retention: RetentionRepository;
  readonly deployLeases: DeployLeasesRepository;
  readonly channels: ChannelsRepository;

  constructor(
    readonly db: Db,
    private readonly client?: MongoClient,
  ) {
    this.replicas = new ReplicasRepository(db);
    this.versions = new VersionsRepository(db, this.replicas);
    this.sddcs = new SddcsRepository(db);
    this.attempts = new AttemptsRepository(db);
    this.deployments = new DeploymentsRepository(db, this.attempts, this.versions);
    this.retention = new RetentionRepository(db);
    this.deployLeases = new DeployLeasesRepository(db);
    this.channels = new ChannelsRepository(db);
  }

  /** `timeoutMs` bounds how long an unreachable server is waited for (default 10 s). */
  /** `readOnly`: no index is created, for a user that may only read (an agent's, see docker-compose.yml). */
  static async connect(uri: string, options: { timeoutMs?: number; readOnly?: boolean } = {}): Promise<Catalog> {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: options.timeoutMs ?? 10_000, appName: 'vmhub' });
    await client.connect();
    const catalog = new Catalog(client.db(), client);
    if (!options.readOnly) await catalog.ensureIndexes();
    return catalog;
  }

  async ensureIndexes(): Promise<void> {
    await this.versions.createIndexes();
    await this.replicas.createIndexes();
    await this.sddcs.createIndexes();
    await this.deployments.createIndexes();
    await this.attempts.createIndexes();
    await this.retention.createIndexes();
    await this.deployLeases.createIndexes();
    await this.channels.createIndexes();
  }

  async close(): Promise<void> {
    await this.client?.close();
  }
}
