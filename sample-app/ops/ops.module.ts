import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { OpsController } from './ops.controller';

/** `/health`, `/metrics` and `/cache/stats` (the cache module is global in the sample app). */
@Module({ imports: [TerminusModule], controllers: [OpsController] })
export class OpsModule {}
