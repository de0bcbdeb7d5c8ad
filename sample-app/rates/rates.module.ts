import { Module } from '@nestjs/common';
import { RatesController } from './rates.controller';
import { RatesService } from './rates.service';
import { RatesUpstream } from './rates.upstream';

/**
 * A cached call to a slow, failing upstream, served from `grace` when it fails (issue 13).
 * Needs `CacheModule` to be global (or imported here).
 */
@Module({ controllers: [RatesController], providers: [RatesUpstream, RatesService] })
export class RatesModule {}
