/**
 * Relay Global Object Identification: the `Node` interface. Ids stay the
 * UUIDs the API has always returned (globally unique, so `node(id)` finds an
 * object by looking it up), which keeps every stored id and every consumer
 * working; see README "Schema conventions".
 */
import { Field, ID, InterfaceType } from 'type-graphql';

@InterfaceType('Node', { description: 'An object with a stable, globally unique id that node(id) and nodes(ids) fetch again' })
export abstract class Node {
  @Field(() => ID, { description: 'Globally unique id: a UUID, or for a usage record its request id' })
  id!: string;
}
