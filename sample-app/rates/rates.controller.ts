import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  UseInterceptors,
} from '@nestjs/common';
import { CacheStatusInterceptor } from '../../lib';
import { RatesService, type Rate } from './rates.service';
import { RatesUpstream, type UpstreamMode } from './rates.upstream';

/**
 * `GET /rates/EUR` answers from {@link RatesService}; `X-Cache` says how: `MISS` (the upstream
 * answered), `HIT`, or `STALE` (the upstream failed or was slow, and `grace` kept the last rate).
 */
@Controller('rates')
@UseInterceptors(CacheStatusInterceptor)
export class RatesController {
  constructor(
    private readonly rates: RatesService,
    private readonly upstream: RatesUpstream,
  ) {}

  /** `POST /rates/upstream {"failing":true}` or `{"failing":false,"delayMs":3000}`. */
  @Post('upstream')
  @HttpCode(200)
  configure(@Body() body: Partial<UpstreamMode>): UpstreamMode {
    const { failing, delayMs } = body ?? {};
    if (failing !== undefined && typeof failing !== 'boolean') {
      throw new BadRequestException('failing must be true or false');
    }
    if (
      delayMs !== undefined &&
      !(typeof delayMs === 'number' && delayMs >= 0 && delayMs <= 60_000)
    ) {
      throw new BadRequestException('delayMs must be a number of milliseconds from 0 to 60000');
    }
    return this.upstream.configure({
      ...(failing === undefined ? {} : { failing }),
      ...(delayMs === undefined ? {} : { delayMs }),
    });
  }

  @Get(':currency')
  async get(@Param('currency') currency: string): Promise<Rate & { upstreamCalls: number }> {
    const rate = await this.rates.rate(currency.toUpperCase());
    return { ...rate, upstreamCalls: this.upstream.calls };
  }
}
