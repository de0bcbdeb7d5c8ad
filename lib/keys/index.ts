export {
  KeyConstructor,
  type ArgFieldNames,
  type KeyConstructorDefinition,
  type KeyFieldValues,
  type KeyTarget,
} from './key-constructor';
export * from './key-constructor.fields';
