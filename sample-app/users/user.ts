/** A user row. The class doubles as the "entity changed" event of invalidation rules. */
export class User {
  constructor(
    readonly id: number,
    public name: string,
    public email: string,
  ) {}
}
