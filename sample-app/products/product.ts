/** A catalog product, as in the PyFly seed's example. */
export interface Product {
  productId: string;
  name: string;
  price: number;
  category: string;
}
