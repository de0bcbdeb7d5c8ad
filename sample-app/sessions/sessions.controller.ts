import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Post,
} from '@nestjs/common';
import type { Session } from './session';
import { SessionsService } from './sessions.service';

/** What the routes answer: the session with what its `Date`s and `Set` allow computing. */
interface SessionView {
  id: string;
  user: string;
  roles: string[];
  isAdmin: boolean;
  createdAt: string;
  ageSeconds: number;
}

/**
 * `POST /sessions` signs in, `GET /sessions/:id` reads (and keeps alive) a session, `DELETE`
 * signs out. The view is computed from the cached `Date`s and `Set` (`getTime()`, `has()`),
 * which would throw on a JSON round trip's strings and arrays.
 */
@Controller('sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Post()
  async create(@Body() body: { user?: unknown; roles?: unknown }): Promise<SessionView> {
    if (typeof body?.user !== 'string' || body.user === '') {
      throw new BadRequestException('user: a non-empty string');
    }
    const roles = Array.isArray(body.roles) ? body.roles.filter((r) => typeof r === 'string') : [];
    return view(await this.sessions.create(body.user, roles));
  }

  @Get(':id')
  async get(@Param('id') id: string): Promise<SessionView> {
    const session = await this.sessions.touch(id);
    if (!session) throw new NotFoundException('No such session (expired, or signed out)');
    return view(session);
  }

  @Delete(':id')
  @HttpCode(204)
  async end(@Param('id') id: string): Promise<void> {
    if (!(await this.sessions.end(id))) throw new NotFoundException('No such session');
  }
}

function view(session: Session): SessionView {
  return {
    id: session.id,
    user: session.user,
    roles: [...session.roles],
    isAdmin: session.roles.has('admin'),
    createdAt: session.createdAt.toISOString(),
    ageSeconds: Math.floor((Date.now() - session.createdAt.getTime()) / 1000),
  };
}
